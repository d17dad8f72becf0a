"""The customer's application, as scenarios describe it: a real HTTP server on loopback.

One receiver serves every scenario item of a test worker; each item gets its own path prefix
(``/<token>/voice``, ``/<token>/fallback``, ``/<token>/status``) with its own answers, and
every request that arrives is recorded for the item's ``then.webhook`` checks.

A domain shared from item to item (fixtures.py) keeps the URLs of a *seat* instead, which
the receiver hands to the slot of the item holding the domain. A request reaches that slot
only if its call (``CallSid``) began after the item took the seat: a late status callback or
webhook of the previous holder's call gets 404, as it would at that item's own released URL.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..cloud.server import start_site


@dataclass
class AppBehaviour:
    # One document, or one per request in turn (the last repeats): a Redirect chain.
    twiml: str | list[str] = "<Response><Say>Hello from siptwin</Say></Response>"
    status: int = 200
    delay: float = 0.0
    body: str | None = None  # raw body instead of TwiML (e.g. broken XML)
    content_type: str = "application/xml"


@dataclass
class WebhookRequest:
    at: float
    kind: str  # voice, fallback, status
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]

    def as_record(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "method": self.method, "url": self.url,
                "headers": self.headers, "params": self.params}


@dataclass
class AppSlot:
    token: str
    voice: AppBehaviour = field(default_factory=AppBehaviour)
    fallback: AppBehaviour | None = None
    requests: list[WebhookRequest] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def of_kind(self, kind: str) -> list[WebhookRequest]:
        return [r for r in self.requests if r.kind == kind]


# When the twin created the call with this SID (time.time()), or None for a call it does not know.
CallCreated = Callable[[str], Awaitable[float | None]]


@dataclass
class Seat:
    """Webhook URLs that outlast one item: a shared domain's (fixtures.py)."""

    token: str
    holder: AppSlot | None = None
    since: float = 0.0  # when the holder took it


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1", call_created: CallCreated | None = None) -> None:
        self.host = host
        self.port = 0
        self._slots: dict[str, AppSlot] = {}
        self._seats: dict[str, Seat] = {}
        self.call_created = call_created  # Environment sets it from its twin
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{token}/{kind}", self._handle)
        self._runner, self.port = await start_site(app, self.host, 0)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def slot(self, voice: AppBehaviour | None = None, fallback: AppBehaviour | None = None) -> AppSlot:
        token = secrets.token_hex(6)
        slot = self._slots[token] = AppSlot(token, voice or AppBehaviour(), fallback)
        return slot

    def release(self, slot: AppSlot) -> None:
        self._slots.pop(slot.token, None)

    def url(self, slot: AppSlot | Seat, kind: str) -> str:
        return f"http://{self.host}:{self.port}/{slot.token}/{kind}"

    def seat(self) -> Seat:
        """A seat (its URLs: :meth:`url`); only a receiver that can tell when a call began
        (``call_created``) can keep a previous holder's calls out of the next holder's slot."""
        if self.call_created is None:
            raise RuntimeError("seats need call_created")
        token = secrets.token_hex(6)
        seat = self._seats[token] = Seat(token)
        return seat

    def take_seat(self, seat: Seat, slot: AppSlot) -> None:
        seat.holder, seat.since = slot, time.time()

    def leave_seat(self, seat: Seat) -> None:
        seat.holder = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        slot = self._slots.get(token)
        kind = request.match_info["kind"]
        params = dict(await request.post()) if request.method == "POST" else {}
        params.update(request.query)
        seat = self._seats.get(token) if slot is None else None
        if seat is not None and seat.holder is not None and self.call_created is not None:
            since = seat.since
            created = await self.call_created(str(params.get("CallSid", "")))
            if created is not None and created >= since and seat.since == since:
                slot = seat.holder
        if slot is None:
            return web.Response(status=404, text="no such scenario item")
        slot.requests.append(WebhookRequest(
            time.time(), kind, request.method, str(request.url),
            dict(request.headers), {k: str(v) for k, v in params.items()}))
        slot.arrived.set()
        if kind == "status":
            return web.Response(status=204)
        behaviour = slot.voice if kind == "voice" else (slot.fallback or AppBehaviour(status=404))
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        body = behaviour.body if behaviour.body is not None else _nth(
            behaviour.twiml, len(slot.of_kind(kind)) - 1)
        return web.Response(status=behaviour.status, text=body,
                            content_type=behaviour.content_type or None)


def _nth(documents: str | list[str], index: int) -> str:
    if isinstance(documents, str):
        return documents
    return documents[min(index, len(documents) - 1)]
