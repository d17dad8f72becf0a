"""A region node: one Twilio edge on its own address (or, with ``siptwin up --listen``, every
edge on one address, each request going to the region its Request-URI host names).

Thin glue between the transport (octets), the SIP core (admission, transactions) and the
Twilio rules (the inbound pipeline). Accepted calls are handed to a :class:`CallHandler` - the
voice layer - through a :class:`CallSession`; until the voice layer answers differently, the
built-in :class:`StaticAnswer` answers every call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from dnslib import QTYPE, DNSRecord

from ..cloud.view import ControlPlaneView, DomainSnapshot
from ..limits import Limits
from ..model.calls import (
    BYE_UNDELIVERED_NOTE,
    TLS_FAILED_NOTE,
    Call,
    CallRegistry,
    TraceEntry,
)
from ..model.codes import CallStatus
from ..model.sids import new_call_sid
from ..settings import Fidelity
from ..sip.admission import admit
from ..sip.errors import SipParseError
from ..sip.message import Request, Response, make_request
from ..sip.routing import Hop, response_hop, stamp_received, stamped_hop
from ..sip.sdp import (
    SRTP_KEY_BYTES,
    SRTP_SUITES,
    Answer,
    CryptoAttribute,
    SdpError,
    SessionDescription,
    answer_offer,
    make_offer,
    summarize_offer,
)
from ..sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    Send,
    State,
    Timeout,
    TimerConfig,
    TransactionError,
    TransactionLayer,
    TransportError,
    TxKey,
    new_branch,
    server_key,
)
from ..sip.uri import SipUri
from ..sip.validate import UasPolicy
from ..transport.endpoint import ConnectionBudget, EndpointConfig, Impairment, SipEndpoint, Source
from ..transport.timers import LayerTimer
from ..transport.tls import allow_tls13_on
from .catalogue import Catalogue, Region
from .dns import DnsResolver
from .overload import TICK_SECONDS, OverloadGuard, ack_branch, new_call_branch, stateless_refusal
from .pipeline import DigestState, InviteContext, Verdict, run_pipeline
from .registrar import Registrar
from .responses import twilio_response, twilio_to_tag

log = logging.getLogger("siptwin.node")
# Every SIP message in and out: a one-line summary at INFO (`up -v`), the full text at DEBUG
# (`up -vv`).
sip_log = logging.getLogger("siptwin.sip")

NODE_POLICY = UasPolicy(
    allowed_methods=frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REGISTER"}),
    # Twilio's edge answers 483 (32006) where a plain endpoint would go on (spec §4.2 step 2).
    reject_exhausted_max_forwards=False,
)
ACK_TIMEOUT_ERROR = (32022, "No ACK received within 32 seconds of 200 OK")
# Finished server transactions are forgotten in batches on this grid (seconds), not one wake-up
# of the event loop each: at 500 calls/s that is 1,500 wake-ups a second fewer, and a wake-up
# from idle costs more than the work it does (bench/RESULTS.md, eighth session).
EXPIRY_GRAIN = 0.1
INTERNAL_ERROR = (12400, "Internal failure")


class CallHandler(Protocol):
    """The voice layer: decides what an accepted call becomes."""

    async def run(self, session: CallSession) -> None: ...


class StaticAnswer:
    """Answers every call at once and waits for the caller to hang up (no webhook yet)."""

    async def run(self, session: CallSession) -> None:
        await session.answer()
        await session.ended.wait()


class CallEnd(asyncio.Event):
    """A call's end (``Dialog.ended``): an asyncio.Event that also wakes the timed waits for
    it (:meth:`wait_at_most`, a ``<Pause>``)."""

    _wakers: list[asyncio.Future[None]] | None = None  # made with the first timed wait

    def set(self) -> None:
        super().set()
        for waker in self._wakers or ():
            if not waker.done():
                waker.set_result(None)

    async def wait_at_most(self, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        """Return once set, or after ``seconds``. One future and one timer: asyncio.timeout
        around wait() costs a context manager, the current task and the running loop looked
        up three times (a getpid system call each on Python 3.11), for every <Pause>."""
        if self.is_set():
            return
        waker: asyncio.Future[None] = loop.create_future()
        wakers = self._wakers
        if wakers is None:
            wakers = self._wakers = []
        wakers.append(waker)
        timer = loop.call_later(seconds, _wake, waker)
        try:
            await waker
        finally:
            timer.cancel()
            wakers.remove(waker)


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)


@dataclass
class Dialog:
    call: Call
    invite: Request
    invite_key: TxKey
    hop: Hop
    to_tag: str
    local_sdp: bytes | None = None
    local_description: SessionDescription | None = None  # local_sdp, decoded
    # A late offer (INVITE without SDP): our 200 carried the offer, the caller's ACK answers.
    late_offer: bool = False
    remote_answer: SessionDescription | None = None
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    answered: bool = False
    local_cseq: int = 0
    domain: DomainSnapshot | None = None
    session: CallSession | None = None
    ended: CallEnd = field(default_factory=CallEnd)
    # SDES of a secure call: our master key for the whole dialog, and the (theirs, ours)
    # a=crypto pair of the current answer.
    srtp_key: bytes | None = None
    srtp: tuple[CryptoAttribute, CryptoAttribute] | None = None
    # One RTP port for the whole dialog, and the o= version of our description, which
    # changes exactly when the description does (RFC 3264 §8, §5.2).
    media_port: int | None = None
    sdp_version: int = 1
    # Twilio hung up before the caller's ACK arrived: the BYE waits for it (RFC 3261 §15),
    # with the status the call ends with; Timer H (32022) ends it otherwise.
    bye_after_ack: str | None = None
    # Who may speak in this dialog (the caller's From tag, the (transport, host) pairs of
    # _dialog_peers), read once from the INVITE while it is decoded: the INVITE is kept
    # compacted for the call, and each ACK or BYE would otherwise decode it again.
    from_tag: str | None = None
    peers: set[tuple[str, str]] = field(default_factory=set)


class CallSession:
    """What the voice layer can do with one accepted call."""

    def __init__(self, node: RegionNode, dialog: Dialog) -> None:
        self._node = node
        self._dialog = dialog
        # The call's record and its INVITE, fixed for the dialog's life: plain attributes,
        # as the voice layer reads them several times a call.
        self.call: Call = dialog.call
        self.invite: Request = dialog.invite
        self._dtmf: asyncio.Queue[str] | None = None  # made with the first digit or reader
        self._task: asyncio.Task[None] | None = None  # the node's task running the handler
        # Called with (offer, answer) when a re-INVITE changed the media (hold, resume,
        # new address or keys); the voice layer re-plans its stream.
        self.on_media_change: Callable[[SessionDescription, Answer], None] | None = None

    @property
    def dtmf(self) -> asyncio.Queue[str]:
        """The caller's digits (RTP events and SIP INFO) in arrival order; most calls send none,
        so the queue is made on first use."""
        if self._dtmf is None:
            self._dtmf = asyncio.Queue()
        return self._dtmf

    def put_digit(self, digit: str) -> None:
        self.dtmf.put_nowait(digit)

    @property
    def ended(self) -> asyncio.Event:
        return self._dialog.ended

    def wait_ended(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Awaited: returns when the call ends, or after ``seconds`` if it goes on that long.
        (CallEnd's own coroutine, handed over: no second coroutine around it for a <Pause>.)"""
        return self._dialog.ended.wait_at_most(seconds,
                                               self._node._loop or asyncio.get_running_loop())

    @property
    def answered(self) -> bool:
        return self._dialog.answered

    @property
    def media_answer(self) -> bytes | None:
        """Our SDP (answer, or offer for a late-offer INVITE) once the call is answered."""
        return self._dialog.local_sdp

    @property
    def late_offer(self) -> bool:
        """The INVITE had no SDP: ``media_answer`` is our offer, the ACK brings the answer."""
        return self._dialog.late_offer

    async def remote_answer(self) -> SessionDescription | None:
        """For a late offer: the caller's SDP answer, once its ACK has arrived (None when
        the ACK carried none or an unreadable one). Waits for the ACK; the node ends a call
        whose ACK never comes (32022)."""
        await self._dialog.acked.wait()
        return self._dialog.remote_answer

    @property
    def media_description(self) -> SessionDescription | None:
        """``media_answer`` already decoded (None for a late offer: ours is only bytes)."""
        return self._dialog.local_description

    @property
    def srtp(self) -> tuple[CryptoAttribute, CryptoAttribute] | None:
        """The caller's accepted ``a=crypto`` line and ours, when the media is SRTP."""
        return self._dialog.srtp

    @property
    def srtp_key(self) -> bytes | None:
        """Our SDES master key (key || salt) when the domain is secure."""
        return self._dialog.srtp_key

    @property
    def domain(self) -> DomainSnapshot:
        assert self._dialog.domain is not None
        return self._dialog.domain

    @property
    def region(self) -> Region:
        return self._node.catalogue.regions.get(self.call.region, self._node.region)

    @property
    def fidelity(self) -> Fidelity:
        return self._node.fidelity

    @property
    def outbound(self) -> OutboundPort:
        """The region's own SIP socket, for the twin's outbound legs (``<Dial><Sip>``)."""
        return OutboundPort(self._node)

    @property
    def catalogue(self) -> Catalogue:
        return self._node.catalogue

    @property
    def control(self) -> ControlPlaneView:
        return self._node.control

    async def twin_dns(self, name: str, qtype: str) -> list:
        """Answer records for ``name`` from the twin's own zone (what regions.dns serves)."""
        node = self._node
        if node._dns is None:
            node._dns = DnsResolver(node.catalogue, node.control)
        reply = node._dns.resolve(DNSRecord.question(name, qtype))
        wanted = getattr(QTYPE, qtype)
        return [rr for rr in reply.rr if rr.rtype == wanted]

    def registered_contacts(self, aor: str) -> list[str]:
        """The contact URIs registered for ``aor`` (``sip:alice@acme.sip.twilio.com``)."""
        return [binding.contact for binding in self._node.registrar.bindings(aor)]

    async def answer(self, media_port: int | None = None) -> None:
        """200 OK with SDP; ``media_port`` is where the voice layer receives RTP."""
        self._node._answer(self._dialog, media_port)

    async def reject(self, status: int, reason: str | None = None,
                     error: tuple[int, str] | None = None, call_status: str = "failed") -> None:
        self._node._reject_accepted(self._dialog, status, reason, error, call_status)

    async def hangup(self) -> None:
        """BYE, once the caller's ACK of our 200 has arrived; returns when the call is over."""
        self._node._hangup(self._dialog, "completed")
        await self._dialog.ended.wait()


class OutboundPort:
    """A region node's SIP socket lent to an outbound leg (``ua.client.SharedTransport``):
    Twilio's INVITEs leave from the edge's own port 5060, and the answers come back to it."""

    def __init__(self, node: RegionNode) -> None:
        self._node = node

    def send_now(self, data: bytes, hop: Hop) -> None:
        node = self._node
        node._log_sip("out", hop.transport, (hop.host, hop.port), data)
        node.endpoint.send_now(data, hop)

    def local_address(self, transport: str) -> tuple[str, int]:
        return self._node.addresses.get(transport) or (self._node.region.address, 5060)

    def attach(self, call_id: str, on_bytes: Callable[[bytes, Source], None],
               on_send_error: Callable[[Hop, OSError], None] | None = None) -> None:
        self._node._outbound[call_id] = on_bytes
        if on_send_error is not None:
            self._node._outbound_errors[call_id] = on_send_error

    def detach(self, call_id: str) -> None:
        self._node._outbound.pop(call_id, None)
        self._node._outbound_errors.pop(call_id, None)


class RegionNode:
    def __init__(
        self,
        region: Region,
        catalogue: Catalogue,
        control: ControlPlaneView,
        fidelity: Fidelity,
        digest: DigestState,
        calls: CallRegistry,
        registrar: Registrar,
        handler: CallHandler | None = None,
        tls_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        limits: Limits | None = None,
        budget: ConnectionBudget | None = None,
        tls_refresh: Callable[[], None] | None = None,
    ) -> None:
        self.region = region
        self.catalogue = catalogue
        self.control = control
        self.fidelity = fidelity
        self.policy = dataclasses.replace(NODE_POLICY,
                                          advertised_methods=tuple(fidelity.allow_methods))
        self.digest = digest
        self.calls = calls
        self.registrar = registrar
        self.handler: CallHandler = handler or StaticAnswer()
        self.layer = TransactionLayer(TimerConfig(ack_wait=fidelity.ack_timeout))
        self.layer.expiry_grain = EXPIRY_GRAIN
        self.endpoint = SipEndpoint(
            EndpointConfig(region.address, region.udp_port, region.tcp_port,
                           region.tls_port if tls_context else None, tls_context=tls_context,
                           tls_refresh=tls_refresh,
                           impairment=Impairment(region.latency_ms, region.loss_percent),
                           reuse_port=reuse_port, limits=limits, budget=budget,
                           max_message_size=(limits or Limits()).max_message_size),
            self._on_bytes, self._on_transport_event,
        )
        self._tls_context = tls_context
        if tls_context is not None:
            allow_tls13_on(tls_context, fidelity.tls13)
        self._dialogs: dict[str, Dialog] = {}
        # Call-ID -> the outbound leg (ua client) whose messages arrive on this node's socket
        self._outbound: dict[str, Callable[[bytes, Source], None]] = {}
        self._outbound_errors: dict[str, Callable[[Hop, OSError], None]] = {}
        self.endpoint.on_send_error = self._on_send_error
        self._byes: dict[TxKey, tuple[Call, Hop]] = {}  # our BYEs awaiting an answer
        self._send_errors: dict[Hop, str] = {}  # while a send failure is being handled
        self._dns: DnsResolver | None = None  # the twin's zone, for <Dial> to twilio.com names
        self._address_texts: dict[tuple[str, int], str] = {}
        self._contacts: dict[str, str] = {}  # our Contact by transport, once bound
        self._timer = LayerTimer(self.layer, self._apply)
        self._applying = 0  # _apply calls under way (see _apply)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # The loop's clock, bound once started (the transaction layer's deadlines are on it):
        # asked for at every message, without a method of the node's own around it.
        self._now: Callable[[], float] = _not_started
        limits = limits or Limits()
        self.overload = OverloadGuard(limits.overload_lag, limits.overload_message_rate,
                                      limits.overload_retransmissions,
                                      wait_limit=limits.overload_queue_wait)
        self._retry_after = (("Retry-After", str(limits.overload_retry_after)),)
        self._refusal_headers = (f"Retry-After: {limits.overload_retry_after}\r\n"
                                 "Server: Twilio\r\n").encode()
        self._overload_timer: asyncio.TimerHandle | None = None
        self._overload_logged_at = float("-inf")

    def region_for(self, request: Request) -> Region:
        """The region a request is processed in: the node's own, or - when every region is
        served on one address - the one its Request-URI host names (unlocalized, unknown
        edge labels and foreign hosts: the node's own, the default region)."""
        if self.catalogue.shared_address is None or not isinstance(request.uri, SipUri):
            return self.region
        match = self.catalogue.match_host(request.uri.host)
        return match.region if match is not None and match.region is not None else self.region

    @property
    def _allow(self) -> str:
        """The Allow header the twin advertises (the ``allow_methods`` setting, spec §4.8)."""
        return self.policy.allow_header

    def apply_fidelity(self, fidelity: Fidelity) -> None:
        """New settings take effect for the next message (scenarios change them per test)."""
        self.fidelity = fidelity
        self.policy = dataclasses.replace(NODE_POLICY,
                                          advertised_methods=tuple(fidelity.allow_methods))
        self.layer.config = TimerConfig(ack_wait=fidelity.ack_timeout)
        if self._tls_context is not None:
            allow_tls13_on(self._tls_context, fidelity.tls13)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._now = self._loop.time
        await self.endpoint.start()
        self._contacts.clear()
        self._schedule_overload_tick(self._loop.time())

    async def close(self) -> None:
        self._timer.cancel()
        if self._overload_timer is not None:
            self._overload_timer.cancel()
            self._overload_timer = None
        for task in list(self._tasks):
            task.cancel()
        await self.endpoint.close()

    @property
    def addresses(self) -> dict[str, tuple[str, int] | None]:
        return {"udp": self.endpoint.udp_address, "tcp": self.endpoint.tcp_address,
                "tls": self.endpoint.tls_address}

    # ------------------------------------------------------------------ overload
    def _schedule_overload_tick(self, previous: float) -> None:
        assert self._loop is not None
        due = self._loop.time() + TICK_SECONDS
        self._overload_timer = self._loop.call_at(due, self._overload_tick, previous, due)

    def _overload_tick(self, previous: float, due: float) -> None:
        now = self._now()
        change = self.overload.tick(now - due, now - previous, *self.endpoint.take_wait_figures())
        # Episodes may come and go many times a second: one line per 10 s at most.
        if change is True and now - self._overload_logged_at >= 10.0:
            self._overload_logged_at = now
            rate = self.overload.admission.rate
            log.warning("%s overloaded (event loop %.0f ms late%s): shedding new calls (%s); "
                        "%d shed so far in %d episodes", self.region.id, (now - due) * 1000,
                        "" if rate is None else f", new calls admitted at {rate:.0f}/s",
                        self.fidelity.overload_action, self.overload.shed,
                        self.overload.episodes)
        self._schedule_overload_tick(now)

    def _sheds(self, request: Request) -> bool:
        """A new call while overloaded: an INVITE outside any dialog, without credentials (a
        call that has had its 407 goes on) and not a retransmission of one already taken."""
        if request.method != "INVITE" or request.to.tag is not None:
            return False
        headers = request.headers
        if headers.get("Proxy-Authorization") is not None or headers.get("Authorization") is not None:
            return False
        return server_key(request) not in self.layer

    def _shed_unparsed(self, data: bytes, source: Source) -> bool:
        """A new call's INVITE judged from its bytes (regions/overload.py): True when it was
        shed - dropped, or refused 503 statelessly - before the full parse."""
        branch = new_call_branch(data)
        if branch is None:
            return False
        overload = self.overload
        # A retransmission of an INVITE refused 503 is refused again, with the same To tag
        # (RFC 3261 §8.2.6.2): its caller has been told, the 503 may be on its way.
        tag = overload.refused.get(branch)
        if tag is None:
            waited = self.endpoint.datagram_wait if self._judged_by_wait(source) else None
            if overload.admits_new_call(branch, waited):
                return False
        overload.messages += 1
        overload.shed += 1
        overload.shed_before_parsing += 1
        self._log_sip("in", source.transport, (source.host, source.port), data)
        if self.fidelity.overload_action == "reject":
            if tag is None:
                tag = twilio_to_tag().encode()
            refusal = stateless_refusal(data, source.host, source.port,
                                        b"SIP/2.0 503 Service Unavailable\r\n",
                                        self._refusal_headers, tag)
            if refusal is not None:
                self._log_sip("out", source.transport, (source.host, source.port), refusal)
                self.endpoint.send_now(refusal, source.reply_to)
                overload.refused_statelessly(branch, tag)
            else:  # its Via asks more of the reply's routing: answered from the full parse
                message = admit(data, self.policy, datagram=source.transport == "udp",
                                max_size=self.endpoint.limits.max_message_size).message
                if isinstance(message, Request):
                    stamp_received(message, source.host, source.port)
                    self._refuse(message, response_hop(message, source.transport, source.host,
                                                       source.port))
        return True

    def _judged_by_wait(self, source: Source) -> bool:
        """New calls by datagram are shed by their wait in the receive buffer, when a backlog
        can build there; otherwise (streams, a buffer the kernel kept small) by the guard's
        ticks: a late loop or retransmitting callers."""
        return source.transport == "udp" and self.endpoint.datagrams_wait_visibly

    def _refuse(self, request: Request, hop: Hop) -> None:
        """503 + Retry-After to a new call shed under overload: stateless (no transaction,
        no call record; a retransmission is answered the same way, and the ACK matches
        nothing and is absorbed)."""
        self._send(twilio_response(request, 503, "Service Unavailable", extra=self._retry_after),
                   hop)

    # ------------------------------------------------------------------ input
    def _on_bytes(self, data: bytes, source: Source) -> None:
        if data[:7] == b"INVITE " and self._shed_unparsed(data, source):
            return
        if (data[:4] == b"ACK " and self.overload.refused
                and self.overload.absorbs_ack(ack_branch(data))):
            # The ACK of a stateless 503 to a shed call: nothing holds it, and the full
            # parse would only find that out (a tenth of a call's CPU, per call shed).
            self.overload.messages += 1
            self._log_sip("in", source.transport, (source.host, source.port), data)
            return
        transport = source.transport
        outcome = admit(data, self.policy, datagram=transport == "udp",
                        max_size=self.endpoint.limits.max_message_size)
        message = outcome.message
        call_id: str | None = None
        if message is not None:
            # A validated request holds its Call-ID decoded (the key of its call record, and
            # what _send traces by); anything else is read from its header fields.
            call_id = message._views.get("call-id")
            if call_id is None:
                call_ids = message.headers.by_key("call-id")
                call_id = call_ids[0][2] if call_ids else None
        peer = (source.host, source.port)
        if sip_log.isEnabledFor(logging.INFO):
            self._log_sip("in", transport, peer, data)
        if call_id is not None:
            outbound = self._outbound.get(call_id)
            if outbound is not None and message is not None:
                outbound(data, source)
                return
            self._trace(call_id, "in", transport, peer, (source.local_host, source.local_port),
                        data)
        if outcome.reply is not None:
            self._send(outcome.reply, source.reply_to)
            return
        if message is None:
            log.debug("%s dropped a message from %s: %s", self.region.id, source.host, outcome.dropped)
            return
        overload = self.overload
        overload.messages += 1
        if isinstance(message, Request):
            if message.method != "ACK":
                hop = stamped_hop(message, source.transport, source.host, source.port)
                if server_key(message) in self.layer:
                    overload.retransmissions += 1
            elif message.top_via.is_rfc3261:
                # Nothing answers an ACK: the received/rport stamp only routes responses
                # (RFC 3261 §18.2.2), and an ACK with an RFC 3261 branch is matched without
                # its Via text. (An RFC 2543 ACK is matched by its stamped Via, as its INVITE.)
                hop = source.reply_to
            else:
                hop = stamped_hop(message, source.transport, source.host, source.port)
            if overload.shedding and not self._judged_by_wait(source) and self._sheds(message):
                overload.shed += 1
                if self.fidelity.overload_action == "reject":
                    self._refuse(message, hop)
                return
            effects = self.layer.receive(message, hop, self._now(),
                                         reliable=source.transport != "udp")
            self._apply(effects, source)
        else:
            self._apply(self.layer.receive(message, source.reply_to, self._now()), source)

    def _on_send_error(self, hop: Hop, error: OSError) -> None:
        """No connection could be opened to ``hop`` (a caller whose TCP/TLS connection has
        gone, a dialled device that is off): transactions sending there fail now."""
        self._send_errors[hop] = str(error) or type(error).__name__
        try:
            self._apply(self.layer.transport_failed_to(hop, self._now()))
        finally:
            self._send_errors.pop(hop, None)
        for on_error in list(self._outbound_errors.values()):
            on_error(hop, error)

    def _on_transport_event(self, event: str, source: Source, detail: str = "") -> None:
        """Something not SIP on a stream (a TLS handshake on the plain port, a TLS handshake
        the client did not complete): no call can come of it, so a record says what happened
        for ``siptwin explain`` and diagnostics."""
        if event == "tls-handshake-failed":
            record = Call(
                call_id=f"tls-{source.host}-{source.port}@{source.local_host}:{source.local_port}",
                region=self.region.id, source_ip=source.host, source_port=source.port,
                transport="tls", created_at=time.time(), status="dropped",
                fidelity=self.fidelity.as_record(), method="TLS",
                request_uri=f"tls:{source.local_host}:{source.local_port}",
            )
            record.note(f"{TLS_FAILED_NOTE} {detail}")
            self.calls.put(record)
            return
        if event != "tls-on-plain-port":
            return
        record = Call(
            call_id=f"tls-{source.host}-{source.port}@{source.local_host}:{source.local_port}",
            region=self.region.id, source_ip=source.host, source_port=source.port,
            transport=source.transport, created_at=time.time(), status="dropped",
            fidelity=self.fidelity.as_record(), method="TLS",
            request_uri=f"tcp:{source.local_host}:{source.local_port}",
        )
        record.note(f"a TLS handshake arrived on plain TCP port {source.local_port}; "
                    "the connection was closed")
        self.calls.put(record)

    def _apply(self, effects: list, source: Source | None = None) -> None:
        # Effects applied while others are (a request's handling answers it): the timer is
        # set once, when the outermost batch is done, not after each nested one.
        self._applying += 1
        try:
            for effect in effects:
                if isinstance(effect, Send):
                    self._send(effect.message, effect.destination)
                elif isinstance(effect, RequestReceived):
                    assert source is not None
                    self._on_request(effect, source)
                elif isinstance(effect, AckReceived):
                    self._on_ack(effect.request, source)
                elif isinstance(effect, Timeout):
                    self._on_timeout(effect)
                elif isinstance(effect, TransportError):
                    pending = self._byes.get(effect.key)
                    error = self._send_errors.get(pending[1]) if pending is not None else None
                    self._bye_undelivered(effect.key, "the connection to it failed"
                                          + (f" ({error})" if error else ""))
                elif (isinstance(effect, ResponseReceived) and effect.key is not None
                      and effect.response.status >= 200):
                    self._byes.pop(effect.key, None)  # our BYE was answered: delivered
        finally:
            self._applying -= 1
        if not self._applying:
            self._timer.reschedule()

    # ------------------------------------------------------------------ output
    def _send(self, message: Request | Response, hop: Hop) -> None:
        data = message.to_bytes()
        endpoint = self.endpoint
        transport = hop.transport
        local = endpoint.udp_address if transport == "udp" else (
            endpoint.tcp_address if transport == "tcp" else endpoint.tls_address)
        # (a response's Call-ID is the request's, decoded and shared: its fields are packed)
        call_id = message._views.get("call-id")
        if call_id is None:
            call_ids = message.headers.by_key("call-id")
            call_id = call_ids[0][2] if call_ids else None
        if call_id is not None:
            self._trace(call_id, "out", transport, (hop.host, hop.port), local, data)
        if sip_log.isEnabledFor(logging.INFO):
            self._log_sip("out", transport, (hop.host, hop.port), data)
        endpoint.send_now(data, hop)

    def _log_sip(self, direction: str, transport: str, peer: tuple[str, int],
                 data: bytes) -> None:
        if not sip_log.isEnabledFor(logging.INFO):
            return
        arrow = "<-" if direction == "in" else "->"
        first = data.split(b"\r\n", 1)[0][:200].decode("utf-8", "replace")
        where = f"{self.region.id} {arrow} {transport}:{peer[0]}:{peer[1]}"
        if sip_log.isEnabledFor(logging.DEBUG):
            sip_log.debug("%s %d bytes\n%s", where, len(data),
                          data[:8192].decode("utf-8", "replace"))
        else:
            call_id = _header_value(data, b"call-id") or b"?"
            sip_log.info("%s %s (Call-ID %s)", where, first,
                         call_id[:80].decode("utf-8", "replace"))

    def _respond(self, key: TxKey, response: Response) -> None:
        status = response.status
        if status >= 200 and status != 407 and status != 401:
            cseq = response._views.get("cseq")  # (shared with the request: see make_response)
            if cseq is not None:
                invite = cseq.method == "INVITE"
            else:
                cseqs = response.headers.by_key("cseq")
                invite = bool(cseqs) and cseqs[0][2].endswith("INVITE")
            if invite:
                self.overload.completed_now += 1  # a call set up, or turned away: its pace
        try:
            self._apply(self.layer.respond(key, response, self._now()))
        except TransactionError as err:
            log.debug("late response on %s: %s", key, err)

    def _trace(self, call_id: str | None, direction: str, transport: str,
               peer: tuple[str, int], local: tuple[str, int] | None, data: bytes) -> None:
        if call_id is None:
            return
        call = self.calls.get(call_id)
        if call is not None:
            texts = self._address_texts
            peer_text = texts.get(peer) or self._address_text(peer)
            local_text = (texts.get(local) or self._address_text(local)) if local else ""
            call.record(TraceEntry(time.time(), direction, transport, peer_text, local_text,
                                   data))

    def _address_text(self, address: tuple[str, int]) -> str:
        """"ip:port", one string per address: a call's trace repeats the same two."""
        text = self._address_texts.get(address)
        if text is None:
            if len(self._address_texts) >= 1024:
                self._address_texts.clear()
            text = self._address_texts[address] = f"{address[0]}:{address[1]}"
        return text

    # ------------------------------------------------------------------ requests
    def _on_request(self, event: RequestReceived, source: Source) -> None:
        """Every request ends with an answer and its transaction freed, even when a stage
        fails: an exception here would otherwise leave the server transaction in the table
        for good (a flood of them grows memory without bound). (The dispatch by method is
        inside the try, not a method of its own: one call fewer for every request.)"""
        try:
            request, key = event.request, event.key
            method = request.method
            if method == "INVITE":
                if request.to.tag is None:
                    self._on_initial_invite(request, key, event.source, source)
                else:
                    self._on_reinvite(request, key, source)
            elif method == "BYE":
                self._on_bye(request, key, source)
            elif method == "CANCEL":
                self._on_cancel(request, key, event.cancels)
            elif method == "OPTIONS":
                self._respond(key, twilio_response(request, 200, extra=(
                    ("Allow", self._allow), ("Accept", "application/sdp"))))
            elif method == "INFO":
                self._on_info(request, key, source)
            elif method == "REGISTER":
                self._respond(key, self.registrar.handle(self, request, source, time.time()))
            else:
                self._respond(key, twilio_response(request, 405, extra=(("Allow", self._allow),)))
        except Exception:
            log.exception("%s failed on %s %s from %s", self.region.id, event.request.method,
                          _safe_call_id(event.request), source.host)
            self._fail(event)

    def _fail(self, event: RequestReceived) -> None:
        """500 (12400) on a request still unanswered, and no dialog left behind for it. A
        transaction already answered finishes on its own timers."""
        key, request = event.key, event.request
        transaction = self.layer.transaction(key)
        if transaction is None or transaction.state not in (State.TRYING, State.PROCEEDING):
            return
        for call_id, dialog in list(self._dialogs.items()):
            if dialog.invite_key == key:
                self._dialogs.pop(call_id, None)
                dialog.ended.set()
                dialog.acked.set()
        call = self.calls.get(_safe_call_id(request)) if request.method == "INVITE" else None
        if call is not None:
            call.status, call.final_status = CallStatus.FAILED, 500
            call.alert(*INTERNAL_ERROR, time.time())
        try:
            self._apply(self.layer.respond(key, twilio_response(
                request, 500, "Server Internal Error",
                extra=(("X-Twilio-Error", f"{INTERNAL_ERROR[0]} {INTERNAL_ERROR[1]}"),)),
                self._now()))
        except Exception:
            log.exception("could not answer 500; forgetting the transaction")
            self._apply(self.layer.abandon(key))

    def _on_initial_invite(self, request: Request, key: TxKey, hop: Hop, source: Source) -> None:
        region = self.region_for(request)
        call = Call(
            call_id=request.call_id, region=region.id, source_ip=source.host,
            source_port=source.port, transport=source.transport, created_at=time.time(),
            request_uri=request.uri_text, from_uri=str(request.from_.uri), to_uri=str(request.to.uri),
            fidelity=self.fidelity.as_record(),
        )
        previous = self.calls.get(call.call_id)
        if previous is not None:
            call.trace = previous.trace  # keep the first attempt (the 407 round) in the trace
        self.calls.put(call)
        if previous is None:
            # This INVITE arrived before its call record existed: trace it now, in the record.
            self._trace(call.call_id, "in", source.transport, (source.host, source.port),
                        (source.local_host, source.local_port), request.to_bytes())
        ctx = InviteContext(
            request=request, transport=source.transport, source_ip=source.host,
            source_port=source.port, region=region, catalogue=self.catalogue,
            control=self.control, fidelity=self.fidelity, digest=self.digest, now=time.time(),
            call_rate=self.calls.call_rate,
        )

        def send_trying() -> None:
            self._respond(key, twilio_response(request, 100, self.fidelity.trying_reason))

        verdict = run_pipeline(ctx, send_trying)
        call.note(*ctx.notes)
        if ctx.host is not None:
            call.edge_label = ctx.host.edge_label
        if ctx.domain is not None:
            call.domain_sid, call.domain_name = ctx.domain.sid, ctx.domain.domain_name
            call.account_sid = ctx.domain.account_sid
        if verdict is not None:
            self._decide(call, request, key, verdict)
            return
        self._accept(call, request, key, hop, ctx)

    def _decide(self, call: Call, request: Request, key: TxKey, verdict: Verdict) -> None:
        call.decided_by = verdict.stage
        if verdict.error is not None:
            call.alert(verdict.error.code, verdict.error.message, time.time())
        if verdict.silent:
            call.status = CallStatus.DROPPED
            self._apply(self.layer.abandon(key))
            self.calls.notify(call, "dropped")
            return
        call.status = (CallStatus.CHALLENGED if verdict.status in (401, 407)
                       else CallStatus.REJECTED)
        call.final_status = verdict.status
        extra = verdict.headers
        if verdict.error is not None:
            extra = (*extra, ("X-Twilio-Error", verdict.error.header()))
        self._respond(key, twilio_response(request, verdict.status or 500, verdict.reason or None,
                                          to_tag=twilio_to_tag(), extra=extra))
        self.calls.notify(call, call.status)

    def _accept(self, call: Call, request: Request, key: TxKey, hop: Hop, ctx: InviteContext) -> None:
        call.sid = new_call_sid()
        call.username = ctx.username
        call.status = CallStatus.RINGING
        dialog = Dialog(call, request, key, hop, twilio_to_tag(), domain=ctx.domain,
                        from_tag=request.from_.tag)
        dialog.peers = _dialog_peers(dialog)
        self._dialogs[call.call_id] = dialog
        self._respond(key, twilio_response(request, 180, to_tag=dialog.to_tag,
                                          extra=(("Contact", self._contact(hop)),)))
        self.calls.notify(call, "ringing")
        session = dialog.session = CallSession(self, dialog)
        # The node's own loop: asyncio.get_running_loop() asks the kernel for the process id
        # each time on Python 3.11 (a system call per call).
        task = (self._loop or asyncio.get_running_loop()).create_task(self._run_handler(session))
        # Held here until the handler returns; _run_handler lets go of it as it ends (a done
        # callback would cost a callback scheduled and run for every call).
        self._tasks.add(task)
        session._task = task

    async def _run_handler(self, session: CallSession) -> None:
        dialog = session._dialog
        try:
            await self.handler.run(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("voice handler failed for %s", dialog.call.sid)
            if not dialog.answered and not dialog.ended.is_set():
                self._reject_accepted(dialog, 500, "Server Internal Error", INTERNAL_ERROR, "failed")
        else:
            if dialog.answered and not dialog.ended.is_set():
                self._hangup(dialog, "completed")
        finally:
            if session._task is not None:
                self._tasks.discard(session._task)
        if dialog.ended.is_set():
            self.calls.pack_later(dialog.call)  # kept compressed from now on
            dialog.session = None  # no cycle left to wait for a full collection

    def _contact(self, hop: Hop) -> str:
        contact = self._contacts.get(hop.transport)
        if contact is not None:
            return contact
        port = {"udp": self.region.udp_port, "tcp": self.region.tcp_port,
                "tls": self.region.tls_port}[hop.transport]
        address = self.addresses.get(hop.transport)
        if address:
            port = address[1]
        suffix = "" if hop.transport == "udp" else f";transport={hop.transport}"
        contact = f"<sip:{self.region.address}:{port}{suffix}>"
        if address and address[1]:  # bound (see start): the same on every answer
            self._contacts[hop.transport] = contact
        return contact

    def _answer(self, dialog: Dialog, media_port: int | None = None) -> None:
        if dialog.answered or dialog.ended.is_set():
            return
        request = dialog.invite
        port = media_port or _media_port()
        dialog.media_port = port
        body = b""
        secure = dialog.domain is not None and dialog.domain.secure
        dialog.srtp_key = secrets.token_bytes(SRTP_KEY_BYTES) if secure else None
        if request.body:
            answer = answer_offer(request.sdp, self.region.address, port, 1,
                                  srtp_key=dialog.srtp_key)
            if isinstance(answer, Answer):
                dialog.local_description = answer.description
                dialog.srtp = answer.crypto
                body = answer.to_bytes()
        else:
            keys: tuple[str, ...] = ()
            if dialog.srtp_key is not None:
                keys = (CryptoAttribute(1, SRTP_SUITES[0], dialog.srtp_key).to_value(),)
            body = make_offer(self.region.address, port, 1, crypto=keys,
                              session_name="Twilio Media Gateway")
            dialog.late_offer = True
        dialog.local_sdp = body
        dialog.answered = True
        call = dialog.call
        call.answered_at = time.time()
        call.status = CallStatus.IN_PROGRESS
        call.final_status = 200
        self._respond(dialog.invite_key, twilio_response(
            request, 200, to_tag=dialog.to_tag, body=body,
            extra=(("Contact", self._contact(dialog.hop)), ("Allow", self._allow))))
        self.calls.notify(call, "answered")

    def _reject_accepted(self, dialog: Dialog, status: int, reason: str | None,
                         error: tuple[int, str] | None, call_status: str) -> None:
        if dialog.answered or dialog.ended.is_set():
            return
        call = dialog.call
        extra: tuple[tuple[str, str], ...] = ()
        if error is not None:
            call.alert(error[0], error[1], time.time())
            extra = (("X-Twilio-Error", f"{error[0]} {error[1]}"),)
        call.final_status = status
        self._respond(dialog.invite_key, twilio_response(dialog.invite, status, reason,
                                                        to_tag=dialog.to_tag, extra=extra))
        self._end(dialog, call_status)

    def _end(self, dialog: Dialog, status: str) -> None:
        if dialog.ended.is_set():
            return
        dialog.call.status = status
        dialog.call.ended_at = time.time()
        dialog.ended.set()
        dialog.acked.set()  # nobody waits for an ACK of a call that is over
        self._dialogs.pop(dialog.call.call_id, None)
        self.calls.notify(dialog.call, "completed" if status == "completed" else status)

    def _hangup(self, dialog: Dialog, status: str) -> None:
        """Twilio ends an answered call: BYE towards the caller."""
        if dialog.ended.is_set():
            return
        if not dialog.answered:
            self._reject_accepted(dialog, 486 if status == "busy" else 404, None, None, status)
            return
        if not dialog.acked.is_set():
            dialog.bye_after_ack = status  # RFC 3261 §15: no BYE before the ACK
            return
        self._send_bye(dialog)
        self._end(dialog, status)

    def _send_bye(self, dialog: Dialog) -> None:
        invite = dialog.invite
        dialog.local_cseq += 1
        target = _remote_target(invite)
        hop = dialog.hop
        if hop.transport == "udp" and isinstance(target, SipUri):
            hop = Hop("udp", target.host.strip("[]"), target.port or 5060)
        routes = invite.headers.get_all("Record-Route")  # RFC 3261 §12.1.1: UAS route set, in order
        if routes and hop.transport == "udp":
            first = invite.record_routes[0].uri
            if isinstance(first, SipUri):
                hop = Hop("udp", first.host.strip("[]"), first.port or 5060)
        local = self.addresses.get(hop.transport) or (self.region.address, 5060)
        bye = make_request("BYE", str(target) if target else invite.uri_text, [
            ("Via", f"SIP/2.0/{hop.transport.upper()} {local[0]}:{local[1]};branch={new_branch()};rport"),
            *(("Route", route) for route in routes),
            ("Max-Forwards", "70"),
            ("From", f"{invite.headers.get('To')};tag={dialog.to_tag}"),
            ("To", invite.headers.get("From") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{dialog.local_cseq} BYE"),
            ("User-Agent", "Twilio Gateway"),
        ])
        key, effects = self.layer.send_request(bye, hop, self._now(),
                                               reliable=hop.transport != "udp")
        # Until its answer arrives: a BYE that never gets one is noted on the call (explain).
        self._byes[key] = (dialog.call, hop)
        self._apply(effects)

    def _in_dialog(self, request: Request, source: Source | None) -> Dialog | None:
        """The dialog a request belongs to, or None (answered 481, an ACK ignored).

        RFC 3261 §12.2.2: a dialog is its Call-ID and both tags, not the Call-ID alone. And
        it is taken only from where the caller is: the address the INVITE came from (an SBC
        in front of the caller included) or the caller's Contact, on the dialog's transport
        (the Contact's own when it names one). A stranger who learnt the Call-ID and tags
        gets 481 and the call goes on."""
        call_id = request._views.get("call-id")  # (decoded when it was validated)
        dialog = self._dialogs.get(call_id if call_id is not None else _safe_call_id(request))
        if dialog is None:
            return None
        try:
            tags_match = (request.to.tag == dialog.to_tag
                          and request.from_.tag == dialog.from_tag)
        except SipParseError:
            return None
        if not tags_match:
            return None
        if source is not None and (source.transport, source.host) not in dialog.peers:
            dialog.call.note(
                f"a {request.method} for this call from {source.host} over {source.transport}, "
                "not the caller's address, was refused (481)")
            return None
        return dialog

    def _on_ack(self, ack: Request, source: Source | None = None) -> None:
        dialog = self._in_dialog(ack, source)
        if dialog is None or not dialog.answered or dialog.acked.is_set():
            return
        if dialog.late_offer and ack.body:
            try:
                dialog.remote_answer = ack.sdp
            except SdpError as err:
                dialog.call.note(f"the ACK's SDP answer is unreadable: {err}")
        dialog.acked.set()
        if dialog.bye_after_ack is not None:
            self._send_bye(dialog)
            self._end(dialog, dialog.bye_after_ack)

    def _bye_undelivered(self, key: TxKey, why: str) -> None:
        pending = self._byes.pop(key, None)
        if pending is None:
            return
        call, hop = pending
        where = f"{hop.transport}:{hop.host}:{hop.port}"
        call.note(f"{BYE_UNDELIVERED_NOTE} {where}: {why}")
        log.info("%s: BYE for %s not delivered to %s (%s)", self.region.id, call.call_id,
                 where, why)

    def _on_timeout(self, effect: Timeout) -> None:
        if effect.timer == "F":
            self._bye_undelivered(effect.key, "no response to it or its retransmissions "
                                              "(Timer F, 64*T1)")
            return
        if effect.timer != "2xx-ack":
            return
        dialog = next((d for d in self._dialogs.values() if d.invite_key == effect.key), None)
        if dialog is None:
            return
        dialog.call.alert(*ACK_TIMEOUT_ERROR, time.time())
        self._send_bye(dialog)
        self._end(dialog, "failed")

    def _on_reinvite(self, request: Request, key: TxKey, source: Source) -> None:
        dialog = self._in_dialog(request, source)
        if dialog is None:
            self._respond(key, twilio_response(request, 481))
            return
        body = dialog.local_sdp or b""  # no offer: ours again, version unchanged
        answer = None
        if request.body:
            answer = self._answer_reoffer(dialog, request)
            if answer is None:
                self._respond(key, twilio_response(request, 488, to_tag=dialog.to_tag))
                return
            body = dialog.local_sdp or b""
        self._respond(key, twilio_response(request, 200, to_tag=dialog.to_tag, body=body,
                                          extra=(("Contact", self._contact(dialog.hop)),)))
        session = dialog.session
        if answer is not None and session is not None and session.on_media_change is not None:
            session.on_media_change(request.sdp, answer)

    def _answer_reoffer(self, dialog: Dialog, request: Request) -> Answer | None:
        """Answer a re-INVITE's offer on the dialog's own RTP port and SRTP key; the o=
        version grows by one only when the answer differs from our last description."""
        try:
            offer = request.sdp
        except SdpError:
            return None
        secure = dialog.srtp_key is not None
        if summarize_offer(offer).srtp_offered != secure:
            return None  # a secure call stays SRTP, a plain one stays RTP (spec §4.5)
        port = dialog.media_port or _media_port()
        dialog.media_port = port

        def build(version: int) -> Answer | None:
            answer = answer_offer(offer, self.region.address, port, 1, version=version,
                                  srtp_key=dialog.srtp_key)
            return answer if isinstance(answer, Answer) else None

        answer = build(dialog.sdp_version)
        if answer is None or (secure and answer.crypto is None):
            return None
        if answer.to_bytes() != dialog.local_sdp:
            dialog.sdp_version += 1
            answer = build(dialog.sdp_version)
            assert answer is not None
        dialog.local_sdp, dialog.local_description = answer.to_bytes(), answer.description
        dialog.srtp = answer.crypto
        return answer

    def _on_bye(self, request: Request, key: TxKey, source: Source) -> None:
        dialog = self._in_dialog(request, source)
        if dialog is None:
            self._respond(key, twilio_response(request, 481))
            return
        self._respond(key, twilio_response(request, 200))
        if not dialog.answered:
            self._reject_accepted(dialog, 487, "Request Terminated", None, "canceled")
        self._end(dialog, "completed")

    def _on_cancel(self, request: Request, key: TxKey, cancels: TxKey | None) -> None:
        dialog = next((d for d in self._dialogs.values() if d.invite_key == cancels), None)
        if cancels is None or dialog is None:
            self._respond(key, twilio_response(request, 481))
            return
        self._respond(key, twilio_response(request, 200))
        if not dialog.answered:
            self._reject_accepted(dialog, 487, "Request Terminated", None, "canceled")

    def _on_info(self, request: Request, key: TxKey, source: Source) -> None:
        dialog = self._in_dialog(request, source)
        if dialog is None:
            self._respond(key, twilio_response(request, 481))
            return
        self._respond(key, twilio_response(request, 200))
        digit = _dtmf_from_info(request)
        if digit and dialog.session is not None:
            dialog.session.dtmf.put_nowait(digit)


def _media_port() -> int:
    return random.randrange(10000, 60000, 2)


def _not_started() -> float:
    raise AssertionError("the node has no clock before start(): it is its event loop's")


def _header_value(data: bytes, name: bytes) -> bytes | None:
    """A header's value read from raw octets (for a log line; no parse needed)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:64]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() in (name, b"i" if name == b"call-id" else name):
            return value.strip()
    return None


def _safe_call_id(request: Request) -> str:
    try:
        return request.call_id
    except SipParseError:
        return ""


def _dialog_peers(dialog: Dialog) -> set[tuple[str, str]]:
    """(transport, host) pairs an in-dialog request may come from: where the INVITE came
    from, and the caller's Contact."""
    call = dialog.call
    peers = {(call.transport, call.source_ip), (dialog.hop.transport, dialog.hop.host)}
    target = _remote_target(dialog.invite)
    if target is not None:
        named = target.param("transport")
        transport = named.lower() if named else dialog.hop.transport
        if target.scheme == "sips":
            transport = "tls"
        peers.add((transport, target.host.strip("[]")))
    return peers


def _remote_target(invite: Request) -> SipUri | None:
    try:
        contacts = invite.contacts
    except SipParseError:
        return None
    if contacts and contacts[0].address is not None and isinstance(contacts[0].address.uri, SipUri):
        return contacts[0].address.uri
    return None


def _dtmf_from_info(request: Request) -> str | None:
    """The digit of an application/dtmf-relay INFO body (``Signal=5``)."""
    content_type = request.content_type
    if content_type is None or content_type.type not in ("application/dtmf-relay", "application/dtmf"):
        return None
    text = request.body.decode("ascii", "replace")
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip().lower() == "signal" and value.strip():
            return value.strip()[0]
    if content_type.type == "application/dtmf" and text.strip():
        return text.strip()[0]
    return None


__all__ = ["CallHandler", "CallSession", "RegionNode", "StaticAnswer"]
