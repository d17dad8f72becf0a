"""The live media tests name what a phone recorded by its tones (tests/support/audio.py): a
window is a tone only when one frequency carries most of it, so a window of noise or of
concealed packets is not taken for the phone's own tone (which would read as an echo)."""

from __future__ import annotations

import math
import random
from array import array

from tests.support.audio import tone_share, tones_heard

RATE = 8000


def _tone(frequency: float, seconds: float) -> list[int]:
    return [int(12000 * math.sin(2 * math.pi * frequency * i / RATE))
            for i in range(int(RATE * seconds))]


def test_steady_tones_are_named_in_order_and_noise_is_left_out():
    rng = random.Random(7)
    noise = [rng.randint(-8000, 8000) for _ in range(RATE // 2)]
    samples = array("h", _tone(700, 1.0) + noise + _tone(1500, 0.5) + [0] * (RATE // 2))
    assert tones_heard(samples, RATE, (440.0, 700.0, 1500.0)) == [700.0, 700.0, 1500.0]


def test_a_window_where_the_tone_changes_names_neither():
    window = _tone(700, 0.25) + _tone(1500, 0.25)
    assert tone_share(window, 700, RATE) < 0.3 and tone_share(window, 1500, RATE) < 0.3
    assert tones_heard(array("h", window), RATE, (440.0, 700.0, 1500.0)) == []


def test_a_tone_with_lost_packets_is_still_named():
    # every third 20 ms packet lost (silence in its place)
    gappy = [s if (i // 160) % 3 else 0 for i, s in enumerate(_tone(700, 0.5))]
    assert tones_heard(array("h", gappy), RATE, (440.0, 700.0, 1500.0)) == [700.0]
