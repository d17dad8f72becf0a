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


# Of a window's energy, the share a candidate must carry to name it: a steady tone carries
# nearly all (G.711 leaves ~1 % of noise); a window where the tone changes, or where a phone
# concealed lost or late packets, carries no one frequency, and the loudest of a few
# candidates would name it at random.
TONE_SHARE = 0.5


def tone_share(window, frequency: float, rate: int) -> float:
    """The share of the window's energy at ``frequency`` (1.0 for a pure tone there)."""
    energy = sum(s * s for s in window)
    return 2 * power(window, frequency, rate) / (len(window) * energy) if energy else 0.0


def tones_heard(samples, rate: int, candidates) -> list[float]:
    """Half-second windows that are not silence and hold one of the candidates as a steady
    tone (``TONE_SHARE``), each named by it; other windows are left out."""
    size = rate // 2
    names = []
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start:start + size]
        if max(abs(s) for s in window) > 2000:
            loudest = max(candidates, key=lambda f: power(window, f, rate))
            if tone_share(window, loudest, rate) >= TONE_SHARE:
                names.append(loudest)
    return names
