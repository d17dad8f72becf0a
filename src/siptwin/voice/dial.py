"""``<Dial><Sip>``: the twin's outbound INVITE, from the region's own SIP port (spec §4.9).

The INVITE leaves from the edge's port 5060 (the node's socket), so a PBX's allow-list of
Twilio's signalling addresses is exercised too, shaped like Twilio's: ``User-Agent: Twilio
Gateway``, a ``<32 hex>@0.0.0.0`` Call-ID, ``X-Twilio-CallSid``/``X-Twilio-AccountSid``.
Where it goes: a SIP-domain address (``sip:alice@acme.sip.twilio.com``) rings every device
registered as alice at once, first answer wins and the other branches are CANCELled (spec
§4.8); any other host is located by RFC 3263 (NAPTR, SRV, A). Custom headers come from the
URI's query (``sip:bob@pbx?X-Tenant=blue&User-to-User=…``); the X- headers of the final
response go back to the action URL as ``DialSipHeader_X-…`` with ``DialSipCallId`` and
``DialSipResponseCode``. The answered leg's RTP is relayed to and from the caller
(voice.bridge).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from ..model.calls import BYE_UNDELIVERED_NOTE, DIAL_ALERT_PREFIX
from ..model.codes import VoiceError
from ..model.presentation import sip_header_params
from ..sip.errors import SipParseError
from ..sip.sdp import SRTP_KEY_BYTES, SRTP_SUITES, CryptoAttribute, make_offer
from ..sip.uri import SipUri, parse_uri
from ..ua.client import BYE_WAIT, Auth, CallResult, SharedTransport, SipClient
from ..ua.resolve import (
    Lookup,
    ResolveError,
    ServerTarget,
    locate,
    parse_server,
    query_server,
    system_nameserver,
)
from .bridge import LegMedia
from .media import MediaStream

MAX_URI_HEADERS_CHARS = 1024  # 21227 at or past this
MAX_CUSTOM_HEADERS = 10  # 13251 past this (outbound limits are documented, spec §4.6)
MAX_HEADER_VALUE = 256  # 13253 past this
NON_X_HEADERS = ("user-to-user", "remote-party-id", "p-preferred-identity", "p-called-party-id")
USER_AGENT = "Twilio Gateway"  # spec §4.9
MAX_BRANCHES = 10  # a registered AOR has at most 10 bindings (spec §4.8)
# Edge labels tolerated when dialling a registered device (spec §4.8): the legacy us1 forms.
LEGACY_EDGES = (None, "us1", "us1-ix")


@dataclass
class SipTarget:
    uri: str  # the Request-URI, query removed
    user: str | None
    host: str
    port: int | None  # as written: None lets RFC 3263 choose
    transport: str | None
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
    target = SipTarget(address, uri.user or None, uri.host.strip("[]"), uri.port,
                       uri.transport, [])
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


@dataclass
class Branch:
    request_uri: str
    to_uri: str
    server: ServerTarget
    secure: bool = False  # a device of a secure domain: the leg's media is SRTP


class DialSession(Protocol):
    """What ``<Dial>`` reads of the call's session (the node's ``CallSession`` has it)."""

    @property
    def catalogue(self) -> Any: ...

    @property
    def control(self) -> Any: ...

    def registered_contacts(self, aor: str) -> list[str]: ...

    async def twin_dns(self, name: str, qtype: str) -> list[Any]: ...


def make_lookup(session: DialSession, resolver_setting: str) -> Lookup:
    """Names under twilio.com come from the twin's own zone; others from the resolver the
    ``dial_dns_server`` setting names, or the system's. A system resolver that does not
    answer NAPTR/SRV is asked once, then skipped (the host's address may still resolve)."""
    configured = parse_server(resolver_setting)
    unreachable: list[str] = []

    async def lookup(name: str, qtype: str) -> list[Any]:
        name = name.rstrip(".").lower()
        if name == "twilio.com" or name.endswith(".twilio.com"):
            return await session.twin_dns(name, qtype)
        if configured is not None:
            return await query_server(configured, name, qtype)
        if qtype in ("A", "AAAA"):
            return await _system_addresses(name, qtype)
        server = system_nameserver()
        if server is None or unreachable:
            return []
        try:
            return await query_server(server, name, qtype)
        except ResolveError as err:
            unreachable.append(str(err))
            return []

    return lookup


async def _system_addresses(name: str, qtype: str) -> list[Any]:
    family = socket.AF_INET6 if qtype == "AAAA" else socket.AF_INET
    try:
        found = await asyncio.get_running_loop().getaddrinfo(name, None, family=family,
                                                             type=socket.SOCK_DGRAM)
    except OSError:
        return []
    return [_Address(str(info[4][0])) for info in found]


@dataclass
class _Address:
    """An address from the system resolver, shaped like a dnslib record (``str(rr.rdata)``)."""

    rdata: str


async def branches_for(target: SipTarget, session: DialSession, account_sid: str,
                       lookup: Lookup) -> list[Branch] | VoiceError:
    """Where the INVITE(s) go: every binding of a registered user, or the servers RFC 3263
    finds for the host."""
    match = session.catalogue.match_host(target.host)
    if match is None:
        try:
            servers = await locate(target.host, target.port, target.transport, lookup)
        except ResolveError as err:
            return VoiceError(11210, f"{DIAL_ALERT_PREFIX} {target.host}: {err}")
        if not servers:
            return VoiceError(11210, f"{DIAL_ALERT_PREFIX} {target.host}: no SIP server found")
        return [Branch(target.uri, target.uri, servers[0])]
    domain = session.control.find_domain(match.domain_name)
    if domain is None:
        return VoiceError(32002, f"{DIAL_ALERT_PREFIX} no SIP domain {match.domain_name}")
    if domain.account_sid != account_sid:
        return VoiceError(32214, f"{DIAL_ALERT_PREFIX} {match.domain_name} belongs to another account")
    if match.edge_label not in LEGACY_EDGES:
        return VoiceError(32220, f"{DIAL_ALERT_PREFIX} {target.host} names the edge "
                                 f"{match.edge_label}; registered devices are dialled as user@{match.domain_name}")
    if not target.user:
        return VoiceError(32223, f"{DIAL_ALERT_PREFIX} {target.uri} has no user part")
    aor = f"sip:{target.user}@{match.domain_name}"
    branches: list[Branch] = []
    for contact in session.registered_contacts(aor)[:MAX_BRANCHES]:
        try:
            uri = parse_uri(contact)
        except SipParseError:
            continue
        if not isinstance(uri, SipUri):
            continue
        try:
            servers = await locate(uri.host, uri.port, uri.transport, lookup)
        except ResolveError:
            continue
        if servers:
            branches.append(Branch(contact, aor, servers[0], secure=bool(domain.secure)))
    if not branches:
        return VoiceError(32009, f"{DIAL_ALERT_PREFIX} {aor} has no registered device")
    return branches


@dataclass
class DialLeg:
    """How to place the leg: what the interpreter knows of the call."""

    local_host: str
    outbound: SharedTransport
    from_uri: str
    headers: list[tuple[str, str]]
    auth: Auth | None
    ring_timeout: float
    time_limit: float
    caller_gone: asyncio.Event
    # Called once a branch answers: answers the caller if not yet (answerOnBridge) and
    # returns its media stream to bridge, or None.
    on_answer: Callable[[], Awaitable[MediaStream | None]]
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    notes: list[str] = field(default_factory=list)
    srtp_to_secure_devices: bool = True  # setting dial_secure_media


async def dial_sip(branches: list[Branch], leg: DialLeg,
                   target_headers: Sequence[tuple[str, str]] = ()) -> DialOutcome:
    """Ring every branch at once; the first to answer is bridged to the caller and held until
    either side hangs up or time runs out; the others are CANCELled (or hung up, if their 200
    crossed our CANCEL)."""
    relay = LegMedia(leg.local_host)
    port = await relay.open()
    # Devices of a secure domain get an SDES-SRTP offer keyed with a key of this leg's own.
    ours = (CryptoAttribute(1, SRTP_SUITES[0], secrets.token_bytes(SRTP_KEY_BYTES))
            if leg.srtp_to_secure_devices and any(branch.secure for branch in branches)
            else None)
    offer = make_offer(leg.local_host, port, secrets.randbelow(1 << 31), codecs=leg.codecs,
                       session_name="Twilio Media Gateway",
                       crypto=(ours.to_value(),) if ours is not None else ())
    clients: list[SipClient] = []
    invites: dict[asyncio.Future[CallResult], SipClient] = {}
    branch_of: dict[SipClient, Branch] = {}
    answers: dict[asyncio.Future[Any], SipClient] = {}
    gone = asyncio.ensure_future(leg.caller_gone.wait())
    winner: SipClient | None = None
    answered_at: float | None = None
    try:
        for branch in branches:
            client = SipClient(leg.local_host, branch.server.transport, shared=leg.outbound,
                               user_agent=USER_AGENT, call_id_host="0.0.0.0")
            await client.start()
            clients.append(client)
            branch_of[client] = branch
            invites[asyncio.ensure_future(client.invite(
                branch.server.host, branch.server.port, branch.request_uri, auth=leg.auth,
                from_uri=leg.from_uri, to_uri=branch.to_uri,
                headers=[*leg.headers, *target_headers], sdp=offer, hold=leg.time_limit,
                hang_up=True, wait_final=leg.ring_timeout + 2.0,
                cancel_after=leg.ring_timeout))] = client
            answers[asyncio.ensure_future(client.answered.wait())] = client
        while not all(task.done() for task in invites):
            waiting: set[asyncio.Future[Any]] = {t for t in invites if not t.done()} | {gone}
            if winner is None:
                waiting |= {t for t in answers if not t.done()}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if winner is None:
                winner = next((c for t, c in answers.items() if t.done()), None)
                if winner is not None:
                    answered_at = time.monotonic()
                    for other in clients:
                        if other is not winner:
                            other.cancel_pending()
                            other.hang_up_all()
                    final = winner.last.final if winner.last is not None else None
                    relay.answered(final.body if final is not None else b"", ours)
                    stream = await leg.on_answer()
                    if stream is not None:
                        relay.bridge(stream)
                    if relay.note:
                        leg.notes.append(f"<Dial> media: {relay.note}")
            if gone.done():
                for client in clients:
                    client.cancel_pending()
                    client.hang_up_all()
                # Long enough for the answered leg's BYE to be answered or given up on.
                await asyncio.wait(list(invites), timeout=BYE_WAIT + 2.0)
                break
    finally:
        for task in [*invites, *answers, gone]:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        relay.close()
        if relay.to_leg or relay.from_leg:
            kind = "SRTP" if relay.srtp is not None else "RTP"
            leg.notes.append(f"<Dial> media relayed: {relay.to_leg} {kind} packets "
                             f"({relay.bytes_to_leg} bytes) to the dialled party, "
                             f"{relay.from_leg} ({relay.bytes_from_leg} bytes) back")
        if relay.srtp is not None and (relay.srtp.counters.rejected
                                       or relay.srtp.counters.replayed):
            leg.notes.append(f"<Dial> SRTP from the dialled party: "
                             f"{relay.srtp.counters.rejected} packets failed authentication, "
                             f"{relay.srtp.counters.replayed} replayed (dropped)")
        for client in clients:
            await client.close()
    results = [t.result() for t in invites if t.done() and not t.cancelled()
               and t.exception() is None]
    chosen = _chosen(results, winner, invites)
    if winner is not None and chosen is not None and chosen.established:
        leg.notes.extend(_bye_notes(chosen, branch_of[winner]))
    if chosen is None:
        return DialOutcome("canceled" if gone.done() else "failed", None, None, 0, None)
    duration = (int(round(time.monotonic() - answered_at))
                if answered_at is not None and chosen.established else 0)
    final = chosen.final
    headers = []
    if final is not None:
        selection = sip_header_params(final.headers, prefix="DialSipHeader_")
        headers = [(name, value) for name, value in selection.params
                   if name.lower().startswith("dialsipheader_x-")]
    status = dial_status(chosen)
    if gone.done() and not chosen.established:
        status = "canceled"
    return DialOutcome(status, final.status if final else None, chosen.call_id,
                       duration, chosen, headers)


def _bye_notes(result: CallResult, branch: Branch) -> list[str]:
    """What became of the BYE that ended the answered leg, for the caller's record."""
    if result.ended_by_remote:
        return [f"<Dial> the dialled party {branch.request_uri} hung up (BYE received)"]
    server = branch.server
    where = f"the dialled party {branch.request_uri} ({server.transport}:{server.host}:{server.port})"
    if result.bye_failure is not None:
        return [f"{BYE_UNDELIVERED_NOTE} {where}: {result.bye_failure}"]
    if result.bye_status is not None:
        return [f"<Dial> BYE to {where} answered {result.bye_status}"]
    return []


def _chosen(results: list[CallResult], winner: SipClient | None,
            invites: dict[asyncio.Future[CallResult], SipClient]) -> CallResult | None:
    """The branch the outcome reports: the one answered, else a 6xx (global failure), else
    the first final that is not our own CANCEL's 487, else any."""
    if winner is not None:
        for task, client in invites.items():
            if client is winner and task.done() and not task.cancelled() and task.exception() is None:
                return task.result()
    finals = [r for r in results if r.final is not None]
    for result in finals:
        assert result.final is not None
        if result.final.status >= 600:
            return result
    for result in finals:
        assert result.final is not None
        if result.final.status != 487:
            return result
    return finals[0] if finals else (results[0] if results else None)
