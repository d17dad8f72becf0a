"""LayerTimer: the asyncio wake-up of the transaction layer."""

from __future__ import annotations

import asyncio

from siptwin.transport.timers import LayerTimer


class _Layer:
    """A stand-in with the two calls LayerTimer makes: deadlines as set by the test, and
    every advance recorded."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.advanced: list[float] = []

    def next_deadline(self) -> float | None:
        return self.deadline

    def advance(self, now: float) -> list[object]:
        self.advanced.append(now)
        if self.deadline is not None and self.deadline <= now:
            self.deadline = None  # the due timer fired
        return []


def test_a_later_deadline_keeps_the_earlier_wake_up_which_then_sets_the_next() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        layer = _Layer()
        timer = LayerTimer(layer, lambda effects: timer.reschedule())  # type: ignore[arg-type]
        start = loop.time()
        layer.deadline = start + 0.02
        timer.reschedule()
        handle = timer._handle
        # The timer due first is cancelled; the next is due later: no new handle now.
        layer.deadline = start + 0.06
        timer.reschedule()
        assert timer._handle is handle and timer._at == start + 0.02
        # An earlier deadline does move the wake-up.
        layer.deadline = start + 0.01
        timer.reschedule()
        assert timer._handle is not handle and timer._at == start + 0.01
        assert handle is not None and handle.cancelled()
        layer.deadline = start + 0.06
        timer.reschedule()
        await asyncio.sleep(0.03)
        # The early wake-up came, found nothing due, and set the one that is.
        assert len(layer.advanced) == 1 and timer._at == start + 0.06
        await asyncio.sleep(0.06)
        assert len(layer.advanced) == 2 and layer.advanced[-1] >= start + 0.06
        assert layer.deadline is None and timer._at is None
        timer.cancel()

    asyncio.run(scenario())
