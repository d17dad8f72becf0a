"""Status callbacks (``voice_status_callback_url``, spec §5.7).

The ``seed`` profile sends the events the seed document names - initiated, ringing, answered,
completed - and ``observed`` only ``completed``, as live Twilio does for SIP-domain calls; the
list is the ``status_callback_events`` setting. Callbacks of one call go out one at a time in
event order with ``SequenceNumber`` counting those actually sent (0-based), so a receiver can
rely on the numbers. A non-2xx answer or a failure leaves warning 15003 on the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from email.utils import format_datetime

from ..model.calls import Call
from ..model.codes import VoiceError
from ..model.presentation import WebhookParams
from ..settings import Fidelity
from .webhook import WebhookClient

CALLBACK_SOURCE = "call-progress-events"


class StatusCallbacks:
    def __init__(self, webhooks: WebhookClient, call: Call, facts: WebhookParams, url: str | None,
                 method: str, auth_token: str, fidelity: Fidelity) -> None:
        self._webhooks = webhooks
        self._call = call
        self._facts = facts
        self._url = url
        self._method = method
        self._auth_token = auth_token
        self._fidelity = fidelity
        self._events = frozenset(fidelity.status_callback_events) if url else frozenset()
        # Made with the first callback: most domains have no status callback URL.
        self._queue: asyncio.Queue[list[tuple[str, str]] | None] | None = None
        self._sequence = 0
        self._sender: asyncio.Task[None] | None = None

    def event(self, name: str, call_status: str, duration: int | None = None) -> None:
        """Queue the callback for ``name`` if the profile sends it; returns at once."""
        if not self._url or name not in self._events:
            return
        params = self._facts.parameters(call_status)
        if duration is not None:
            params.append(("CallDuration", str(duration)))
        params += [
            ("Timestamp", format_datetime(datetime.now(UTC))),  # RFC 2822, +0000
            ("CallbackSource", CALLBACK_SOURCE),
            ("SequenceNumber", str(self._sequence)),
        ]
        self._sequence += 1
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait(params)
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_all())

    async def finish(self, timeout: float) -> None:
        """Deliver what is queued (bounded), then stop."""
        if self._sender is None or self._queue is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._sender), timeout)
        except TimeoutError:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    async def _send_all(self) -> None:
        assert self._queue is not None
        while (params := await self._queue.get()) is not None:
            assert self._url is not None
            exchange, outcome = await self._webhooks.send(
                "status-callback", self._url, self._method, params, self._auth_token,
                self._fidelity, read_body=False)
            self._call.add_webhook(exchange.as_record())
            if isinstance(outcome, VoiceError):
                event_status = dict(params).get("CallStatus", "")
                self._call.alert(15003, "Call progress: warning response to callback URL",
                                 time.time(), f"status callback ({event_status}): {outcome.detail}")
