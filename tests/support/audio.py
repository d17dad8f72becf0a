"""Tones for the live media tests: WAV files to play, and Goertzel to find one in a recording."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path


def write_tone(path: Path, frequency: float, seconds: float, rate: int = 8000) -> None:
    samples = array("h", (int(12000 * math.sin(2 * math.pi * frequency * i / rate))
                          for i in range(int(rate * seconds))))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def power(samples, frequency: float, rate: int) -> float:
    """Goertzel: the power of one frequency in the samples."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    return previous * previous + before * before - coefficient * previous * before


def read_wav(path: Path) -> tuple[array, int]:
    """Mono 16-bit samples and the rate (the first channel of a stereo file)."""
    with wave.open(str(path)) as recorded:
        rate, channels = recorded.getframerate(), recorded.getnchannels()
        samples = array("h", recorded.readframes(recorded.getnframes()))
    return (samples[::channels] if channels > 1 else samples), rate


def tones_heard(samples, rate: int, candidates) -> list[float]:
    """Half-second windows that are not silence, each named by the loudest candidate."""
    size = rate // 2
    names = []
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start:start + size]
        if max(abs(s) for s in window) > 2000:
            names.append(max(candidates, key=lambda f: power(window, f, rate)))
    return names
