"""The HTTP side of a call: signed requests to the customer's application (spec §5).

:class:`WebhookClient` sends one request the way Twilio's webhook proxy does - form body or
query string, ``X-Twilio-Signature``, ``I-Twilio-Idempotency-Token``, ``User-Agent:
TwilioProxy/1.1`` - within the connect/read/total limits of the fidelity settings and the URL's
connection-override fragment, and classifies what went wrong with Twilio's error code.

Two kinds of URL never leave the process: ``twiml:<Response>…</Response>`` (the twin's inline
documents) and ``http://twimlets.com/…`` (the seed's example application), see
:mod:`siptwin.voice.offline`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from yarl import URL

from ..model.codes import VoiceError
from ..settings import Fidelity
from . import offline
from .overrides import ConnectionPolicy, split_url
from .signature import compute_signature

log = logging.getLogger("siptwin.voice.webhook")

USER_AGENT = "TwilioProxy/1.1"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_TWIML_BYTES = 64 * 1024
TWIML_CONTENT_TYPES = ("text/xml", "application/xml", "text/html")


@dataclass
class Reply:
    """A 2xx answer whose body is acceptable as TwiML (or audio to play)."""

    url: str  # the URL requested, fragment removed: relative URLs resolve against it
    status: int
    content_type: str
    body: bytes


@dataclass
class Exchange:
    """One webhook request as recorded on the call (``call.webhooks``)."""

    kind: str  # voice, fallback, redirect, action, status-callback
    method: str
    url: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    at: float
    status: int | None = None
    error: int | None = None
    elapsed: float = 0.0
    attempts: int = 0
    offline: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "method": self.method, "url": self.url,
            "params": list(self.params), "headers": dict(self.headers),
            "at": self.at, "status": self.status, "error": self.error,
            "elapsed": round(self.elapsed, 4), "attempts": self.attempts,
            "offline": self.offline, **self.extra,
        }


class _AttemptFailed(Exception):
    def __init__(self, error: VoiceError, retry_kind: str | None) -> None:
        super().__init__(error.detail)
        self.error = error
        self.retry_kind = retry_kind  # ct, rt, 4xx, 5xx or None (never retried)


class WebhookClient:
    """Owns the aiohttp session all calls of a twin share (created in the running loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                skip_auto_headers=("User-Agent",),
                # Each request is its own delivery; a stale pooled connection must not turn a
                # healthy app into a spurious 11205.
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        kind: str,
        url: str,
        method: str,
        params: list[tuple[str, str]],
        auth_token: str,
        fidelity: Fidelity,
        *,
        read_body: bool = True,
    ) -> tuple[Exchange, Reply | VoiceError]:
        """One delivery (with the retries its policy allows); never raises for HTTP trouble."""
        method = (method or "POST").upper()
        if method not in ("GET", "POST"):
            method = "POST"
        if offline.handles(url):
            return self._offline(kind, url, method, params)
        bare, policy = split_url(url, fidelity)
        bare = requote(bare)
        if method == "GET":
            query = urlencode(params)
            target = f"{bare}{'&' if urlsplit(bare).query else '?'}{query}" if query else bare
            signature = compute_signature(auth_token, target)
            body = None
        else:
            target = bare
            signature = compute_signature(auth_token, target, params)
            body = urlencode(params).encode("utf-8")
        headers = {
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": USER_AGENT,
        }
        if body is not None:
            headers["Content-Type"] = FORM_CONTENT_TYPE
        exchange = Exchange(kind, method, bare, list(params), headers, time.time())
        began = time.monotonic()
        outcome = await self._deliver(exchange, target, body, policy, read_body)
        exchange.elapsed = time.monotonic() - began
        if isinstance(outcome, VoiceError):
            exchange.error = outcome.code
        return exchange, outcome

    async def _deliver(self, exchange: Exchange, target: str, body: bytes | None,
                       policy: ConnectionPolicy, read_body: bool) -> Reply | VoiceError:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.total_timeout
        last: VoiceError | None = None
        for attempt in range(policy.retries + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            exchange.attempts = attempt + 1
            try:
                async with asyncio.timeout(remaining):
                    return await self._attempt(exchange, target, body, policy, remaining,
                                               read_body)
            except _AttemptFailed as failed:
                last = failed.error
                if failed.retry_kind is None or not policy.retries_after(failed.retry_kind):
                    return last
            except TimeoutError:
                return VoiceError(11205, f"{exchange.method} {exchange.url} did not complete "
                                         f"within {policy.total_timeout:g} s")
        return last or VoiceError(11205, f"{exchange.method} {exchange.url}: no time left to "
                                         "retry within the total timeout")

    async def _attempt(self, exchange: Exchange, target: str, body: bytes | None,
                       policy: ConnectionPolicy, remaining: float,
                       read_body: bool) -> Reply:
        timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=policy.connect_timeout,
                                        sock_read=policy.read_timeout)
        what = f"{exchange.method} {exchange.url}"
        try:
            async with self._http().request(
                exchange.method, URL(target, encoded=True), data=body,
                headers=exchange.headers, timeout=timeout, allow_redirects=True,
            ) as response:
                exchange.status = response.status
                if not 200 <= response.status < 300:
                    kind = "4xx" if response.status < 500 else "5xx"
                    raise _AttemptFailed(VoiceError(
                        11200, f"{what} returned HTTP {response.status}"), kind)
                data = b""
                if read_body:
                    data = await response.content.read(MAX_TWIML_BYTES + 1)
                    if len(data) > MAX_TWIML_BYTES:
                        raise _AttemptFailed(VoiceError(
                            11750, f"{what} returned more than 64 kB"), None)
                content_type = response.headers.get("Content-Type", "")
                return Reply(exchange.url, response.status, content_type, data)
        except aiohttp.ClientConnectorDNSError as err:
            raise _AttemptFailed(VoiceError(11210, f"{what}: cannot resolve host ({err})"),
                                 None) from None
        except aiohttp.ClientConnectorCertificateError as err:
            raise _AttemptFailed(VoiceError(11237, f"{what}: {err}"), None) from None
        except (aiohttp.ClientSSLError, ssl.SSLError) as err:
            raise _AttemptFailed(VoiceError(11220, f"{what}: {err}"), None) from None
        except aiohttp.ConnectionTimeoutError:
            raise _AttemptFailed(VoiceError(
                11205, f"{what}: no connection within {policy.connect_timeout:g} s"), "ct") from None
        except aiohttp.SocketTimeoutError:
            raise _AttemptFailed(VoiceError(
                11205, f"{what}: no data for {policy.read_timeout:g} s"), "rt") from None
        except aiohttp.ClientConnectorError as err:
            raise _AttemptFailed(VoiceError(11205, f"{what}: cannot connect ({err.os_error})"),
                                 "ct") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                aiohttp.ClientResponseError) as err:
            raise _AttemptFailed(VoiceError(11206, f"{what}: {err}"), None) from None
        except aiohttp.ClientError as err:
            raise _AttemptFailed(VoiceError(11200, f"{what}: {err}"), None) from None

    def _offline(self, kind: str, url: str, method: str,
                 params: list[tuple[str, str]]) -> tuple[Exchange, Reply | VoiceError]:
        exchange = Exchange(kind, method, offline.display_url(url), list(params), {},
                            time.time(), offline=True, attempts=1)
        outcome = offline.answer(url)
        if isinstance(outcome, VoiceError):
            exchange.error = outcome.code
            exchange.status = 404
            return exchange, outcome
        exchange.status = 200
        return exchange, Reply(exchange.url, 200, "text/xml", outcome)


def requote(url: str) -> str:
    """Percent-encode what may not appear in a request line (spaces, braces, non-ASCII),
    keeping existing escapes, so the URL signed is byte for byte the URL requested."""
    return quote(url, safe="%/:=&?~+!$,;'@()*[]")


def check_twiml_reply(reply: Reply) -> VoiceError | None:
    """12300 for a missing or unusable Content-Type (spec §5.5); audio is played as is."""
    media_type = reply.content_type.split(";", 1)[0].strip().lower()
    if not media_type:
        return VoiceError(12300, f"{reply.url} answered without a Content-Type")
    if media_type in TWIML_CONTENT_TYPES or media_type.startswith("audio/"):
        return None
    return VoiceError(12300, f"{reply.url} answered with Content-Type {media_type!r}, "
                             "not TwiML (text/xml or application/xml)")
