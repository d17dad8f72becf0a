"""The customer's application, as scenarios describe it: a real HTTP server on loopback.

One receiver serves every scenario item of a test worker; each item gets its own path prefix
(``/<token>/voice``, ``/<token>/fallback``, ``/<token>/status``) with its own answers, and
every request that arrives is recorded for the item's ``then.webhook`` checks.
"""

from __future__ import annotations

import asyncio
import secrets
import time
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


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._slots: dict[str, AppSlot] = {}
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

    def url(self, slot: AppSlot, kind: str) -> str:
        return f"http://{self.host}:{self.port}/{slot.token}/{kind}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        slot = self._slots.get(request.match_info["token"])
        kind = request.match_info["kind"]
        if slot is None:
            return web.Response(status=404, text="no such scenario item")
        params = dict(await request.post()) if request.method == "POST" else {}
        params.update(request.query)
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
