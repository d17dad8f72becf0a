"""asyncio glue for the sans-IO transaction layer's timers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..sip.transaction import TransactionLayer


class LayerTimer:
    """Wakes a :class:`TransactionLayer` when its next timer is due.

    Call :meth:`reschedule` after every batch of effects; when the deadline comes, the layer's
    due timers fire and their effects go to ``apply`` (which reschedules in turn).
    """

    def __init__(self, layer: TransactionLayer, apply: Callable[[list[Any]], None]) -> None:
        self.layer = layer
        self.apply = apply
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def reschedule(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is None or deadline == self._at:
            return
        at = self._at
        if at is not None and at < deadline:
            # The wake-up set already comes first (the timer due then was cancelled: an ACK
            # wait's retransmission, Timer G): it finds nothing due and sets the next one.
            # Moving it later would cost a cancelled handle and a new one per message.
            return
        self.cancel()
        self._at = deadline
        self._handle = asyncio.get_running_loop().call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._handle = self._at = None
        self.apply(self.layer.advance(asyncio.get_running_loop().time()))

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._at = None
