"""``<Dial><Sip>``: an outbound INVITE from the region's own address (spec §4.9).

The INVITE leaves from the twin's address for the region that handles the call, so a PBX's
allow-list of Twilio's signalling addresses is exercised too. Custom headers come from the
URI's query (``sip:bob@pbx?X-Tenant=blue&User-to-User=…``); the X- headers of the final
response go back to the action URL as ``DialSipHeader_X-…`` with ``DialSipCallId`` and
``DialSipResponseCode``. Media is not bridged: each leg keeps its own RTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from ..model.codes import VoiceError
from ..model.presentation import sip_header_params
from ..sip.errors import SipParseError
from ..sip.uri import SipUri, parse_uri
from ..ua.client import Auth, CallResult, SipClient

MAX_URI_HEADERS_CHARS = 1024  # 21227 at or past this
MAX_CUSTOM_HEADERS = 10  # 13251 past this (outbound limits are documented, spec §4.6)
MAX_HEADER_VALUE = 256  # 13253 past this
NON_X_HEADERS = ("user-to-user", "remote-party-id", "p-preferred-identity", "p-called-party-id")


@dataclass
class SipTarget:
    uri: str  # the Request-URI, query removed
    host: str
    port: int
    transport: str
    headers: list[tuple[str, str]]
    warnings: list[VoiceError] = field(default_factory=list)


def parse_sip_target(text: str) -> SipTarget | VoiceError:
    address, _, query = text.strip().partition("?")
    if len(query) >= MAX_URI_HEADERS_CHARS:
        return VoiceError(21227, f"the headers part of {address} is {len(query)} characters")
    try:
        uri = parse_uri(address)
    except SipParseError as err:
        return VoiceError(13243, f"{text!r} is not a SIP URI ({err})")
    if not isinstance(uri, SipUri) or uri.scheme != "sip":
        return VoiceError(13243, f"{text!r} is not a sip: URI")
    target = SipTarget(address, uri.host.strip("[]"), uri.port or 5060,
                       uri.transport or "udp", [])
    for name, value in parse_qsl(query, keep_blank_values=True):
        lower = name.lower()
        if lower.startswith("x-twilio"):
            target.warnings.append(VoiceError(13252, f"header {name} is reserved for Twilio"))
        elif not (lower.startswith("x-") or lower in NON_X_HEADERS):
            target.warnings.append(VoiceError(13252, f"header {name} may not be set on <Sip>"))
        elif len(value) > MAX_HEADER_VALUE:
            target.warnings.append(VoiceError(13253, f"header {name} is {len(value)} characters"))
        elif len(target.headers) >= MAX_CUSTOM_HEADERS:
            target.warnings.append(VoiceError(13251, f"more than {MAX_CUSTOM_HEADERS} headers; "
                                                     f"{name} dropped"))
        else:
            target.headers.append((name, value))
    return target


@dataclass
class DialOutcome:
    status: str  # DialCallStatus: completed, answered, busy, no-answer, failed, canceled
    response_code: int | None
    sip_call_id: str | None
    duration: int
    result: CallResult | None
    headers: list[tuple[str, str]] = field(default_factory=list)  # DialSipHeader_…

    def parameters(self, child_sid: str) -> list[tuple[str, str]]:
        pairs = [("DialCallStatus", self.status), ("DialCallSid", child_sid),
                 ("DialCallDuration", str(self.duration))]
        if self.sip_call_id is not None:
            pairs.append(("DialSipCallId", self.sip_call_id))
        if self.response_code is not None:
            pairs.append(("DialSipResponseCode", str(self.response_code)))
        return pairs + self.headers


def dial_status(result: CallResult) -> str:
    if result.final is None:
        return "no-answer"
    status = result.final.status
    if 200 <= status < 300:
        return "completed"
    if status in (486, 600, 603):
        return "busy"
    if status in (408, 480, 487):
        return "no-answer"
    return "failed"


async def dial_sip(target: SipTarget, *, local_host: str, from_uri: str,
                   extra_headers: list[tuple[str, str]], auth: Auth | None, ring_timeout: float,
                   time_limit: float, caller_gone: asyncio.Event,
                   on_answer: Callable[[], Awaitable[None]] | None = None) -> DialOutcome:
    """Ring ``target``; once answered hold the leg until either side hangs up or time runs out.

    ``on_answer`` runs when the far end answers (``answerOnBridge``: the caller is answered
    only then).
    """
    async with SipClient(local_host, target.transport) as client:
        invite = asyncio.ensure_future(client.invite(
            target.host, target.port, target.uri, auth=auth, from_uri=from_uri,
            headers=[*extra_headers, *target.headers], hold=time_limit, hang_up=True,
            wait_final=ring_timeout + 2.0, cancel_after=ring_timeout))
        gone = asyncio.ensure_future(caller_gone.wait())
        answered = asyncio.ensure_future(client.answered.wait())
        answered_at: float | None = None
        try:
            while not invite.done():
                waiting = {invite, gone} if answered_at is not None else {invite, gone, answered}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if answered_at is None and answered.done():
                    answered_at = time.monotonic()
                    if on_answer is not None:
                        await on_answer()
                if gone.done() and not invite.done():
                    if client.established():
                        client.hang_up_all()
                        await asyncio.wait({invite}, timeout=5)
                    else:  # still ringing: give up the leg
                        invite.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await invite
                    break
        finally:
            gone.cancel()
            answered.cancel()
        if invite.cancelled() or not invite.done():
            return DialOutcome("canceled", None, None, 0, None)
        result = invite.result()
    duration = int(round(time.monotonic() - answered_at)) if answered_at and result.established else 0
    final = result.final
    headers = []
    if final is not None:
        selection = sip_header_params(final.headers, prefix="DialSipHeader_")
        headers = [(name, value) for name, value in selection.params
                   if name.lower().startswith("dialsipheader_x-")]
    return DialOutcome(dial_status(result), final.status if final else None, result.call_id,
                       duration, result, headers)
