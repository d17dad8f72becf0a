"""A real customer application on loopback that checks every signature with the official SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from twilio.request_validator import RequestValidator

__all__ = ["Hit", "WebhookApp"]


@dataclass
class Hit:
    method: str
    path: str
    url: str  # as the application sees it: what Twilio's signature covers
    params: list[tuple[str, str]]
    headers: dict[str, str]
    signature_valid: bool  # with the home region's (us1) token
    signed_by: str | None = None  # the region whose auth token validates the signature

    @property
    def values(self) -> dict[str, str]:
        return dict(self.params)


Responder = Callable[[web.Request, Hit], Awaitable[web.StreamResponse]]


@dataclass
class WebhookApp:
    auth_token: str  # the home region's (us1)
    port: int = 0
    # Every processing region's token: Twilio signs with the token of the region that
    # processed the call, so an application serving several regions tries each.
    region_tokens: dict[str, str] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    routes: dict[str, Responder] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def twiml(self, path: str, document: str, *, status: int = 200,
              content_type: str | None = "text/xml", delay: float = 0.0) -> str:
        async def respond(request: web.Request, hit: Hit) -> web.StreamResponse:
            if delay:
                await asyncio.sleep(delay)
            response = web.Response(status=status, body=document.encode())
            if content_type is None:
                # aiohttp adds application/octet-stream to a bytes body; Twilio wants none.
                response.headers["Content-Type"] = ""
            else:
                response.headers["Content-Type"] = content_type
            return response

        self.routes[path] = respond
        return self.url(path)

    def of(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    async def wait(self, path: str, count: int = 1, timeout: float = 5.0) -> list[Hit]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.of(path)) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.of(path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        url = f"http://127.0.0.1:{self.port}{request.raw_path}"
        params: list[tuple[str, str]] = []
        if request.method == "POST":
            form = await request.post()
            params = [(k, str(v)) for k, v in form.items()]
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = RequestValidator(self.auth_token).validate(url, _multi(params), signature)
        signed_by = next((region for region, token in self.region_tokens.items()
                          if RequestValidator(token).validate(url, _multi(params), signature)),
                         None)
        hit = Hit(request.method, request.path, url,
                  params or list(request.query.items()), dict(request.headers), valid, signed_by)
        self.hits.append(hit)
        async with self._arrived:
            self._arrived.notify_all()
        responder = self.routes.get(request.path)
        if responder is None:
            return web.Response(status=200, text="ok", content_type="text/plain")
        return await responder(request, hit)


class _Multi(dict):
    """The SDK validator reads repeated names through ``getall`` (Flask's MultiDict)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._pairs = pairs

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]


def _multi(pairs: list[tuple[str, str]]) -> _Multi:
    return _Multi(pairs)
