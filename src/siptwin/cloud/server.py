"""Serving the control plane: in the foreground (``python -m siptwin.cloud``) or from a
background thread (tests, and any synchronous caller such as the official ``twilio`` SDK)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
from collections.abc import Callable

from aiohttp import web

from ..limits import Limits
from .errors import ErrorCode, TwilioError

LOOPBACK_HOST = "127.0.0.1"


# The netns backend's bridge: addresses from the RFC 2544 benchmarking block that exist only
# on interfaces siptwin creates between its own network namespaces.
TWIN_NETWORK = ipaddress.ip_network("198.18.0.0/15")


def ensure_loopback(host: str) -> None:
    """The API has no TLS and simple tokens: it listens beyond this machine only when asked."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
        loopback = address.is_loopback or address in TWIN_NETWORK
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to listen on {host!r}: the twin binds to loopback only")


class TwilioShapedErrors(web.RequestHandler):
    """aiohttp answers requests it cannot parse (a bad request line, header or chunk size, a
    line over 8190 bytes, too many headers) itself, in plain text, before any handler runs.
    Twilio's clients expect its JSON error shape on every refusal: this gives them that."""

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs, checks output
        code = ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_PARAMETER
        what = (message or "").strip().split("\n", 1)[0].split(":", 1)[0][:100]
        text = "Internal Server Error" if status >= 500 else f"Bad request: {what or 'malformed HTTP'}"
        response = web.json_response(TwilioError(status, code, text).body(), status=status,
                                     dumps=lambda body: json.dumps(body, separators=(",", ":")))
        response.headers["X-Twilio-Error-Code"] = str(int(code))
        response.force_close()
        del plain
        return response


async def start_site(app: web.Application, host: str, port: int,
                     limits: Limits | None = None, *,
                     beyond_loopback: bool = False) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner and the bound port (useful with port 0).

    The listener is made here rather than by ``web.TCPSite`` so that every connection is
    served by :class:`TwilioShapedErrors`; ``runner.cleanup()`` closes it (on_shutdown).
    ``beyond_loopback`` only when a user asked for it (``siptwin up --api-host``, which warns
    that anyone who can reach the address and has the token can provision the twin)."""
    if not beyond_loopback:
        ensure_loopback(host)
    # aiohttp's keep-alive timer runs from the connection's start, so it also closes one that
    # never sends (or only dribbles) a header section; its default is an hour.
    keepalive = (limits or Limits()).http_idle_timeout
    listeners: list[asyncio.AbstractServer] = []

    async def close_listener(_app: web.Application) -> None:
        for listener in listeners:
            listener.close()

    app.on_shutdown.append(close_listener)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive)
    await runner.setup()
    manager = runner.server
    assert manager is not None
    loop = asyncio.get_running_loop()
    try:
        listener = await loop.create_server(
            lambda: TwilioShapedErrors(manager, loop=loop, access_log=None,
                                       keepalive_timeout=keepalive),
            host, port, reuse_address=True)
    except BaseException:
        await runner.cleanup()
        raise
    listeners.append(listener)
    bound_port = int(listener.sockets[0].getsockname()[1])
    return runner, bound_port


class BackgroundServer:
    """Runs an aiohttp application on its own event loop in a daemon thread."""

    def __init__(
        self, app_factory: Callable[[], web.Application], host: str = LOOPBACK_HOST, port: int = 0
    ) -> None:
        self._app_factory = app_factory
        self._host = host
        self._requested_port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="siptwin-control-plane")
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> str:
        self._thread.start()

        async def boot() -> tuple[web.AppRunner, int]:
            return await start_site(self._app_factory(), self._host, self._requested_port)

        self._runner, self.port = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)
        return self.url

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
