"""Prompts: the frames streamed are the audio the per-call synthesis produced before, made once
and only as far as they are sent; the prompt cache stays within its bounds."""

from __future__ import annotations

import asyncio
import math
import wave
from array import array

import pytest

from siptwin.voice import media
from siptwin.voice.media import FRAME_SAMPLES, PCMA, PCMU, SILENCE, PromptCache, SampledPrompt


def reference_tone(frequency: float, seconds: float, amplitude: int = 8000) -> array:
    """The synthesis every call ran before prompts (sample by sample, the whole prompt)."""
    count = int(max(0.0, min(seconds, media.MAX_PROMPT_SECONDS)) * media.SAMPLE_RATE)
    step = 2 * math.pi * frequency / media.SAMPLE_RATE
    return array("h", (int(amplitude * math.sin(step * i)) for i in range(count)))


def reference_frames(samples: array, payload_type: int) -> list[bytes]:
    """The old stream: the whole prompt encoded up front, cut in 160-byte frames, the last one
    filled with the law's silence byte."""
    payload = media.encode_g711(samples, payload_type)
    fill = SILENCE[payload_type][:1]
    return [payload[i:i + FRAME_SAMPLES].ljust(FRAME_SAMPLES, fill)
            for i in range(0, len(payload), FRAME_SAMPLES)]


def frames_of(prompt: media.Prompt, payload_type: int) -> list[bytes]:
    return [prompt.frame(i, payload_type) for i in range(prompt.frame_count)]


@pytest.mark.parametrize("text", ["Hello", "Hello world, this is the seed's message.",
                                  "x" * 200, "A reasonably long sentence that goes on " * 30])
@pytest.mark.parametrize("payload_type", [PCMU, PCMA])
def test_said_text_streams_the_frames_of_the_old_synthesis(text, payload_type):
    media.PROMPTS.clear()
    prompt = asyncio.run(media.speak(text, "en-US"))
    expected = reference_frames(reference_tone(440.0, media.speech_seconds(text)), payload_type)
    assert frames_of(prompt, payload_type) == expected


@pytest.mark.parametrize("frequency,seconds", [(1000.0, 2.0), (1000.0, 0.25), (440.0, 0.5037),
                                               (697.0, 1.0), (123.4, 0.3)])
def test_tones_stream_the_frames_of_the_old_synthesis(frequency, seconds):
    for payload_type in (PCMU, PCMA):
        assert frames_of(media.tone(frequency, seconds), payload_type) == reference_frames(
            reference_tone(frequency, seconds), payload_type)


def test_a_wav_file_streams_the_frames_of_the_old_encoding(tmp_path):
    samples = array("h", (int(12000 * math.sin(i / 7.0)) ^ (i * 37 % 101) for i in range(8123)))
    path = tmp_path / "prompt.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(samples.tobytes())
    media.PROMPTS.clear()
    prompt = media.audio_for_url(path.as_uri())
    for payload_type in (PCMU, PCMA):
        assert frames_of(prompt, payload_type) == reference_frames(samples, payload_type)
    assert media.audio_for_url(path.as_uri()) is prompt  # read once


def test_the_same_text_is_prepared_once_and_nothing_is_encoded_before_it_is_sent():
    media.PROMPTS.clear()
    first = asyncio.run(media.speak("Hello world", "en-US"))
    assert asyncio.run(media.speak("Hello world", "en-US")) is first
    assert asyncio.run(media.speak("Hello world", "fr-FR")) is not first
    samples = SampledPrompt(array("h", range(-16000, 16000, 3)))
    samples.frame(0, PCMU)
    assert sum(f is not None for f in samples._frames[PCMU]) == 1
    assert PCMA not in samples._frames


def test_the_prompt_cache_keeps_its_bounds():
    cache = PromptCache(max_entries=4, max_bytes=10_000)
    for n in range(10):
        cache.put(("say", str(n)), SampledPrompt(array("h", [n] * 400)))  # 1,600 bytes each
        assert len(cache) <= 4 and cache.bytes <= 10_000
    assert cache.get(("say", "9")) is not None and cache.get(("say", "0")) is None
    cache = PromptCache(max_entries=100, max_bytes=10_000)
    for n in range(10):
        cache.put(("say", str(n)), SampledPrompt(array("h", [n] * 1000)))  # 4,000 bytes each
        assert cache.bytes <= 10_000
    assert len(cache) == 2
    huge = SampledPrompt(array("h", [1] * 5000))
    assert cache.put(("say", "huge"), huge) is huge and cache.get(("say", "huge")) is None
    assert media.PROMPTS.max_entries == 256 and media.PROMPTS.max_bytes == 16 << 20


def test_the_default_cache_is_bounded_under_many_distinct_texts():
    media.PROMPTS.clear()
    for n in range(1000):
        asyncio.run(media.speak(f"message number {n}"))
    assert len(media.PROMPTS) == media.PROMPTS.max_entries


def test_frames_are_rtp_payload_sized():
    prompt = media.tone(440.0, 0.01)
    assert prompt.frame_count == 1 and len(prompt.frame(0, PCMU)) == FRAME_SAMPLES
    assert prompt.frame(0, PCMU).endswith(SILENCE[PCMU][:FRAME_SAMPLES - 80])
