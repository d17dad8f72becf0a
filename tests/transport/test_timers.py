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


def _options(n: int) -> bytes:
    return (f"OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-grain-{n}\r\n"
            f"From: <sip:probe@example.com>;tag={n}\r\nTo: <sip:edge@127.0.0.1>\r\n"
            f"Call-ID: grain-{n}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def _finish_transactions_and_count_wake_ups(grain: float) -> tuple[int, list[float]]:
    """Twenty non-INVITE server transactions answered 5 ms apart (Timer J 0.3 s): how often
    the LayerTimer wakes the layer before all twenty are forgotten, and how long after its
    Timer J each one went."""
    from siptwin.sip.message import make_response, parse_datagram
    from siptwin.sip.routing import Hop
    from siptwin.sip.transaction import RequestReceived, Terminated, TimerConfig, TransactionLayer

    async def scenario() -> tuple[int, list[float]]:
        loop = asyncio.get_running_loop()
        layer = TransactionLayer(TimerConfig(timer_j=0.3))
        layer.expiry_grain = grain
        answered_at: dict[object, float] = {}
        late: list[float] = []
        wake_ups = 0

        def apply(effects: list[object]) -> None:
            nonlocal wake_ups
            wake_ups += 1
            for effect in effects:
                if isinstance(effect, Terminated):
                    late.append(loop.time() - answered_at[effect.key] - 0.3)
            timer.reschedule()

        timer = LayerTimer(layer, apply)
        hop = Hop("udp", "127.0.0.1", 5999)
        for n in range(20):
            request = parse_datagram(_options(n))
            (received,) = [e for e in layer.receive(request, hop, loop.time())
                           if isinstance(e, RequestReceived)]
            layer.respond(received.key, make_response(request, 200, to_tag="t"), loop.time())
            answered_at[received.key] = loop.time()
            timer.reschedule()
            await asyncio.sleep(0.005)
        for _ in range(200):
            if len(layer) == 0:
                break
            await asyncio.sleep(0.01)
        timer.cancel()
        assert len(layer) == 0 and len(late) == 20
        return wake_ups, late

    return asyncio.run(scenario())


def test_a_node_forgets_finished_transactions_a_batch_per_wake_up() -> None:
    """Each call leaves three finished server transactions (Timers I, J, L); the node's
    layer puts their ends on a grid (EXPIRY_GRAIN), so the event loop wakes once per batch
    instead of once per transaction, and none is forgotten before its timer or (the loop's
    own lateness aside) more than the grain after it."""
    from siptwin.regions.node import EXPIRY_GRAIN

    assert 0 < EXPIRY_GRAIN <= 0.2
    one_each, _ = _finish_transactions_and_count_wake_ups(0.0)
    batched, late = _finish_transactions_and_count_wake_ups(EXPIRY_GRAIN)
    assert one_each >= 10  # without the grid: a wake-up per transaction (fewer if the loop lags)
    assert batched <= 3, batched
    # none early; late by the grain at most, plus what a busy machine adds to any timer
    assert min(late) >= -0.002 and max(late) <= EXPIRY_GRAIN + 0.25, late
