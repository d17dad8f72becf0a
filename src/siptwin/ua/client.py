"""A native SIP user agent client built on the core: the twin's outbound leg and the suite's caller.

It places calls the way a PBX does - INVITE, answer the 407 with digest credentials, ACK, BYE
- from any loopback source address, over UDP, TCP or TLS, and records every message with its
time so scenarios can assert the exact response sequence ("100, 407, 100, 180, 200").
``<Dial><Sip>`` uses it for the twin's own outbound INVITE: :attr:`SipClient.answered`,
:meth:`SipClient.established` and :meth:`SipClient.hang_up_all` are the hooks a caller that
bridges a leg needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ..sip.digest import answer_challenge
from ..sip.errors import SipParseError
from ..sip.message import (
    Request,
    Response,
    make_request,
    make_response,
    parse_datagram,
    parse_stream_message,
)
from ..sip.routing import Hop
from ..sip.sdp import make_offer
from ..sip.transaction import (
    RequestReceived,
    ResponseReceived,
    Send,
    Timeout,
    TransactionLayer,
    TransportError,
    TxKey,
    new_branch,
)
from ..sip.uri import SipUri, parse_uri
from ..transport.endpoint import EndpointConfig, SipEndpoint, Source
from ..transport.timers import LayerTimer
from ..transport.tls import client_context

DEFAULT_OFFER = object()  # sentinel: offer PCMU/PCMA/telephone-event from the client
BYE_WAIT = 10.0  # seconds our BYE waits for its final response (Timer F is 32 s at T1 0.5 s)
_CANCEL = object()  # queued to a ringing INVITE's waiter: send CANCEL now


class SharedTransport(Protocol):
    """Someone else's SIP socket the client borrows (a region node's port 5060): the client
    sends through it, and it hands back every message of the calls the client attached."""

    def send_now(self, data: bytes, hop: Hop) -> None: ...

    def local_address(self, transport: str) -> tuple[str, int]: ...

    def attach(self, call_id: str, on_bytes: Any,
               on_send_error: Callable[[Hop, OSError], None] | None = None) -> None: ...

    def detach(self, call_id: str) -> None: ...


@dataclass
class SipExchange:
    at: float
    direction: str  # "out" or "in"
    data: bytes

    @property
    def first_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


@dataclass
class CallResult:
    call_id: str
    responses: list[Response] = field(default_factory=list)  # to the INVITE(s), in order
    final: Response | None = None
    established: bool = False
    ended_by_remote: bool = False
    bye_status: int | None = None
    bye_failure: str | None = None  # why our BYE got no final response (None: it got one)
    timed_out: bool = False
    messages: list[SipExchange] = field(default_factory=list)
    reinvites: list[Response | None] = field(default_factory=list)  # finals, in order

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]

    def header(self, name: str) -> str | None:
        return self.final.headers.get(name) if self.final is not None else None


@dataclass
class IncomingCall:
    """An INVITE this client received as a phone (see :meth:`SipClient.answer_calls`)."""

    invite: Request
    to_tag: str
    answered: bool = False
    cancelled: bool = False
    ended: bool = False


@dataclass
class Auth:
    username: str
    password: str


class SipClient:
    def __init__(self, local_host: str = "127.0.0.1", transport: str = "udp",
                 tls_context: ssl.SSLContext | None = None, t1: float = 0.5, *,
                 shared: SharedTransport | None = None, user_agent: str = "siptwin-client",
                 call_id_host: str | None = None) -> None:
        self.local_host = local_host
        self.transport = transport
        self.user_agent = user_agent
        self.call_id_host = call_id_host or local_host
        # With ``shared`` the client owns no socket: it speaks from the borrowed one.
        self.shared = shared
        self.endpoint = None if shared is not None else SipEndpoint(
            EndpointConfig(local_host, 0 if transport == "udp" else None, None, None,
                           tls_client_context=tls_context or client_context()),
            self._on_bytes,
        )
        if self.endpoint is not None:
            self.endpoint.on_send_error = self._on_send_error
        self._pending: dict[TxKey, asyncio.Queue[Any]] = {}  # INVITEs not yet answered
        from ..sip.transaction import TimerConfig

        self.layer = TransactionLayer(TimerConfig(t1=t1), retransmit_2xx=False)
        self._events: dict[TxKey, asyncio.Queue[Response | None]] = {}
        self._send_errors: dict[TxKey, str] = {}  # transactions whose peer could not be reached
        self._calls: dict[str, CallResult] = {}
        self._ended: dict[str, asyncio.Event] = {}
        # Set when a call of this client is first answered (its 2xx confirmed with an ACK).
        self.answered = asyncio.Event()
        self._timer = LayerTimer(self.layer, self._apply)
        self._loop: asyncio.AbstractEventLoop | None = None
        # As a phone: INVITEs get 180, then ``_answer_status`` after ``_answer_after`` seconds
        # (None: they ring until CANCELled). Nothing is answered unless answer_calls() was called.
        self.incoming: list[IncomingCall] = []
        self._answer_sdp: bytes | None = None
        self._answer_status: int | None = None
        self._answer_after = 0.0
        self._ringing: dict[TxKey, IncomingCall] = {}
        self.incoming_event = asyncio.Event()  # set at every change of ``incoming``

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.endpoint is not None:
            await self.endpoint.start()

    async def close(self) -> None:
        self._timer.cancel()
        if self.shared is not None:
            for call_id in self._calls:
                self.shared.detach(call_id)
        if self.endpoint is not None:
            await self.endpoint.close()

    async def __aenter__(self) -> SipClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def last(self) -> CallResult | None:
        """The most recent call or request exchange of this client."""
        return next(reversed(self._calls.values()), None) if self._calls else None

    def established(self) -> bool:
        """Some call of this client has been answered (and may still be up)."""
        return any(call.established for call in self._calls.values())

    def hang_up_all(self) -> None:
        """End every established call now: our BYE follows at once (see ``invite(hold=...)``)."""
        for call_id in list(self._calls):
            self._ended.setdefault(call_id, asyncio.Event()).set()

    def cancel_pending(self) -> None:
        """CANCEL every INVITE still ringing (a fork another branch answered, a caller gone);
        their 487s end them as usual."""
        for queue in self._pending.values():
            queue.put_nowait(_CANCEL)

    @property
    def local_port(self) -> int:
        if self.shared is not None:
            return self.shared.local_address(self.transport)[1]
        assert self.endpoint is not None
        return self.endpoint.udp_address[1] if self.transport == "udp" else 5060

    def _new_call(self) -> CallResult:
        call_id = f"{secrets.token_hex(16)}@{self.call_id_host}"
        result = CallResult(call_id)
        self._calls[call_id] = result
        if self.shared is not None:
            self.shared.attach(call_id, self._on_bytes, self._on_send_error)
        return result

    # ------------------------------------------------------------------ plumbing
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _on_bytes(self, data: bytes, source: Source) -> None:
        try:
            message = parse_datagram(data) if source.transport == "udp" else parse_stream_message(data)
        except SipParseError:
            return
        call = self._calls.get(message.headers.get("Call-ID") or "")
        if call is not None:
            call.messages.append(SipExchange(time.time(), "in", data))
        self._apply(self.layer.receive(message, source.reply_to, self._now(),
                                       reliable=source.transport != "udp"))

    def _on_send_error(self, hop: Hop, error: OSError) -> None:
        """Nothing could be sent to ``hop``: its transactions fail now (§17.1.4)."""
        if self._loop is None:
            return
        effects = self.layer.transport_failed_to(hop, self._now())
        for effect in effects:
            if isinstance(effect, TransportError) and effect.key in self._events:
                self._send_errors[effect.key] = str(error) or type(error).__name__
        self._apply(effects)

    def _apply(self, effects: list[Any]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(effect.message, effect.destination)
            elif isinstance(effect, ResponseReceived):
                if effect.key in self._events:
                    self._events[effect.key].put_nowait(effect.response)
            elif isinstance(effect, (Timeout, TransportError)):
                if effect.key in self._events:
                    self._events[effect.key].put_nowait(None)
            elif isinstance(effect, RequestReceived):
                self._on_request(effect)
        self._timer.reschedule()

    def _send(self, message: Request | Response, hop: Hop) -> None:
        data = message.to_bytes()
        call = self._calls.get(message.headers.get("Call-ID") or "")
        if call is not None:
            call.messages.append(SipExchange(time.time(), "out", data))
        if self.shared is not None:
            self.shared.send_now(data, hop)
        else:
            assert self.endpoint is not None
            self.endpoint.send_now(data, hop)

    def answer_calls(self, sdp: bytes | None, *, status: int | None = 200,
                     after: float = 0.0) -> None:
        """Act as a phone: ring at every INVITE, then answer ``status`` (with ``sdp`` on a
        2xx) ``after`` seconds later; ``status=None`` rings until CANCELled."""
        self._answer_sdp, self._answer_status, self._answer_after = sdp, status, after

    def _on_request(self, event: RequestReceived) -> None:
        request = event.request
        if request.method == "INVITE" and self._answer_sdp is not None:
            self._on_invite(event)
            return
        if request.method == "CANCEL":
            self._on_cancel(event)
            return
        call = self._calls.get(request.headers.get("Call-ID") or "")
        if request.method == "BYE" and call is not None:
            call.ended_by_remote = True
            self._ended.setdefault(call.call_id, asyncio.Event()).set()
        if request.method == "BYE":
            for incoming in self.incoming:
                if incoming.invite.headers.get("Call-ID") == request.headers.get("Call-ID"):
                    incoming.ended = True
                    self.incoming_event.set()
        self._apply(self.layer.respond(event.key, make_response(request, 200), self._now()))

    def _on_invite(self, event: RequestReceived) -> None:
        request = event.request
        if request.to.tag:  # a re-INVITE: same answer again
            self._apply(self.layer.respond(event.key, self._answer(request, 200, None),
                                           self._now()))
            return
        incoming = IncomingCall(request, secrets.token_hex(4))
        self.incoming.append(incoming)
        self.incoming_event.set()
        self._ringing[event.key] = incoming
        self._apply(self.layer.respond(event.key, self._answer(request, 180, incoming),
                                       self._now()))
        if self._answer_status is not None:
            assert self._loop is not None
            self._loop.call_later(self._answer_after, self._final, event.key)

    def _final(self, key: TxKey) -> None:
        incoming = self._ringing.pop(key, None)
        if incoming is None or self._answer_status is None:
            return
        incoming.answered = 200 <= self._answer_status < 300
        self.incoming_event.set()
        self._apply(self.layer.respond(key, self._answer(incoming.invite, self._answer_status,
                                                         incoming), self._now()))

    def _answer(self, request: Request, status: int, incoming: IncomingCall | None) -> Response:
        extra: list[tuple[str, str]] = []
        body = b""
        if 200 <= status < 300:
            extra.append(("Contact", f"<sip:phone@{self.local_host}:{self.local_port}>"))
            if self._answer_sdp:
                extra.append(("Content-Type", "application/sdp"))
                body = self._answer_sdp
        return make_response(request, status, to_tag=incoming.to_tag if incoming else None,
                             extra=extra, body=body)

    def _on_cancel(self, event: RequestReceived) -> None:
        request = event.request
        incoming = self._ringing.pop(event.cancels, None) if event.cancels is not None else None
        self._apply(self.layer.respond(event.key, make_response(request, 200 if incoming else 481),
                                       self._now()))
        if incoming is not None and event.cancels is not None:
            incoming.cancelled = True
            self.incoming_event.set()
            self._apply(self.layer.respond(event.cancels,
                                           self._answer(incoming.invite, 487, incoming),
                                           self._now()))

    def _via(self) -> str:
        port = self.local_port if self.transport == "udp" or self.shared is not None else 9
        return f"SIP/2.0/{self.transport.upper()} {self.local_host}:{port};branch={new_branch()};rport"

    async def _transact(self, request: Request, hop: Hop, until_final: bool = True,
                        timeout: float = 40.0, why: list[str] | None = None) -> list[Response]:
        """Send ``request`` in a client transaction and collect its responses; ``why`` gets
        the reason when its peer could not be reached."""
        key, effects = self.layer.send_request(request, hop, self._now(),
                                               reliable=hop.transport != "udp")
        queue: asyncio.Queue[Response | None] = asyncio.Queue()
        self._events[key] = queue
        self._apply(effects)
        got: list[Response] = []
        try:
            while True:
                response = await asyncio.wait_for(queue.get(), timeout)
                if response is None:
                    break
                got.append(response)
                if response.status >= 200 or not until_final:
                    break
        except TimeoutError:
            pass
        finally:
            del self._events[key]
            failure = self._send_errors.pop(key, None)
            if failure is not None and why is not None:
                why.append(failure)
        return got

    # ------------------------------------------------------------------ calls
    async def invite(
        self,
        host: str,
        port: int,
        request_uri: str,
        *,
        auth: Auth | None = None,
        from_uri: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        sdp: bytes | None | object = DEFAULT_OFFER,
        hold: float = 0.0,
        hang_up: bool = True,
        wait_final: float = 10.0,
        max_forwards: int = 70,
        cancel_after: float | None = None,
        ack_sdp: bytes | None = None,
        to_uri: str | None = None,
        reinvites: Sequence[bytes] = (),
    ) -> CallResult:
        """Place one call and return everything that happened.

        ``to_uri`` is the To header's URI (default: the Request-URI). ``ack_sdp`` is the
        answer our ACK carries to a late-offer call (``sdp=None``: the 200
        brings the twin's offer).

        ``reinvites`` are SDP offers sent in the dialog, one after the other, once the call
        is established (hold, resume, ...); their final responses land in ``reinvites``.

        ``hold`` keeps an answered call up that long before our BYE (unless the far end hangs
        up first); ``hang_up=False`` leaves the BYE to the twin. A call that gets no final
        response within ``wait_final`` seconds is reported with ``timed_out``.
        """
        hop = Hop(self.transport, host, port)
        result = self._new_call()
        call_id = result.call_id
        from_uri = from_uri or f"sip:siptwin@{self.local_host}"
        from_value = f"<{from_uri}>;tag={secrets.token_hex(4)}"
        body = (make_offer(self.local_host, 20000, 1) if sdp is DEFAULT_OFFER
                else cast(bytes | None, sdp) or b"")
        extra = list(headers or [])
        cseq = 1
        authorization: list[tuple[str, str]] = []
        for _attempt in range(3):
            invite = make_request("INVITE", request_uri, [
                ("Via", self._via()),
                ("Max-Forwards", str(max_forwards)),
                ("From", from_value),
                ("To", f"<{to_uri or request_uri}>"),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} INVITE"),
                ("Contact", f"<sip:siptwin@{self.local_host}:{self.local_port};transport={self.transport}>"),
                ("User-Agent", self.user_agent),
                *authorization,
                *extra,
                *([("Content-Type", "application/sdp")] if body else []),
            ], body)
            final = await self._invite_transaction(invite, hop, result, wait_final, cancel_after)
            if final is None:
                result.timed_out = True
                return result
            if final.status == 407 and auth is not None and not authorization:
                challenge = final.challenges("Proxy-Authenticate")[0]
                cred = answer_challenge(challenge, "INVITE", request_uri, auth.username,
                                        auth.password)
                authorization = [("Proxy-Authorization", cred.to_header())]
                cseq += 1
                continue
            if 200 <= final.status < 300:
                await self._confirm(invite, final, hop, result, hold, hang_up, cseq, ack_sdp,
                                    reinvites)
            return result
        return result

    async def _invite_transaction(self, invite: Request, hop: Hop, result: CallResult,
                                  wait_final: float, cancel_after: float | None) -> Response | None:
        key, effects = self.layer.send_request(invite, hop, self._now(),
                                               reliable=hop.transport != "udp")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._events[key] = queue
        self._pending[key] = queue
        self._apply(effects)
        deadline = self._now() + wait_final
        cancel_at = self._now() + cancel_after if cancel_after is not None else None
        cancelled = cancel_wanted = False
        try:
            while True:
                limit = deadline if cancel_at is None else min(deadline, cancel_at)
                try:
                    response = await asyncio.wait_for(queue.get(), max(0.0, limit - self._now()))
                except TimeoutError:
                    if cancel_at is not None and self._now() >= cancel_at:
                        cancel_at = None
                        await self._cancel(invite, hop)
                        continue
                    return None
                if response is _CANCEL:
                    cancel_at = None
                    if result.responses and not cancelled:  # RFC 3261 §9.1: after a 1xx
                        cancelled = True
                        await self._cancel(invite, hop)
                    else:
                        cancel_wanted = True
                    continue
                if response is None:
                    return None
                result.responses.append(response)
                if cancel_wanted and not cancelled and response.status < 200:
                    cancelled = True
                    await self._cancel(invite, hop)
                if response.status >= 200:
                    result.final = response
                    return cast(Response, response)
        finally:
            del self._events[key]
            self._pending.pop(key, None)

    async def _cancel(self, invite: Request, hop: Hop) -> None:
        from ..sip.transaction import build_cancel

        await self._transact(build_cancel(invite), hop)

    async def _confirm(self, invite: Request, ok: Response, hop: Hop, result: CallResult,
                       hold: float, hang_up: bool, cseq: int, ack_sdp: bytes | None = None,
                       reinvites: Sequence[bytes] = ()) -> None:
        result.established = True
        target = contact_uri(ok) or invite.uri_text
        to_value = ok.headers.get("To") or ""
        dialog_hop = hop
        if hop.transport == "udp":
            try:
                uri = parse_uri(target)
                if isinstance(uri, SipUri):
                    dialog_hop = Hop("udp", uri.host.strip("[]"), uri.port or 5060)
            except SipParseError:
                pass
        ack = make_request("ACK", target, [
            ("Via", self._via()), ("Max-Forwards", "70"),
            ("From", invite.headers.get("From") or ""), ("To", to_value),
            ("Call-ID", result.call_id), ("CSeq", f"{cseq} ACK"),
            *([("Content-Type", "application/sdp")] if ack_sdp else []),
        ], ack_sdp or b"")
        self._send(ack, dialog_hop)
        self.answered.set()
        for body in reinvites:
            cseq += 1
            reinvite = make_request("INVITE", target, [
                ("Via", self._via()), ("Max-Forwards", "70"),
                ("From", invite.headers.get("From") or ""), ("To", to_value),
                ("Call-ID", result.call_id), ("CSeq", f"{cseq} INVITE"),
                ("Contact", invite.headers.get("Contact") or ""),
                ("Content-Type", "application/sdp"),
            ], body)
            responses = await self._transact(reinvite, dialog_hop, timeout=10)
            answer = responses[-1] if responses else None
            result.reinvites.append(answer)
            if answer is not None and 200 <= answer.status < 300:
                self._send(make_request("ACK", target, [
                    ("Via", self._via()), ("Max-Forwards", "70"),
                    ("From", invite.headers.get("From") or ""), ("To", to_value),
                    ("Call-ID", result.call_id), ("CSeq", f"{cseq} ACK"),
                ]), dialog_hop)
        ended = self._ended.setdefault(result.call_id, asyncio.Event())
        if not hang_up:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), hold)
        if result.ended_by_remote:
            return
        bye = make_request("BYE", target, [
            ("Via", self._via()), ("Max-Forwards", "70"),
            ("From", invite.headers.get("From") or ""), ("To", to_value),
            ("Call-ID", result.call_id), ("CSeq", f"{cseq + 1} BYE"),
        ])
        why: list[str] = []
        responses = await self._transact(bye, dialog_hop, timeout=BYE_WAIT, why=why)
        result.bye_status = responses[-1].status if responses else None
        if not responses or responses[-1].status < 200:
            result.bye_failure = (f"the connection to it failed ({why[0]})" if why
                                  else f"no answer within {BYE_WAIT:g} s")

    async def wait_remote_bye(self, call_id: str, timeout: float) -> bool:
        ended = self._ended.setdefault(call_id, asyncio.Event())
        try:
            await asyncio.wait_for(ended.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def request(self, method: str, host: str, port: int, request_uri: str, *,
                      headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                      auth: Auth | None = None, to_uri: str | None = None) -> list[Response]:
        """A non-INVITE request outside a dialog (OPTIONS, REGISTER, ...); returns responses."""
        hop = Hop(self.transport, host, port)
        result = self._new_call()
        call_id = result.call_id
        tag = secrets.token_hex(4)
        authorization: list[tuple[str, str]] = []
        got: list[Response] = []
        for cseq in (1, 2):
            req = make_request(method, request_uri, [
                ("Via", self._via()), ("Max-Forwards", "70"),
                ("From", f"<sip:siptwin@{self.local_host}>;tag={tag}"),
                ("To", f"<{to_uri or request_uri}>"), ("Call-ID", call_id),
                ("CSeq", f"{cseq} {method}"), *authorization, *(headers or []),
            ], body)
            responses = await self._transact(req, hop, timeout=5)
            got.extend(responses)
            final = responses[-1] if responses else None
            if final is None or final.status not in (401, 407) or auth is None or authorization:
                return got
            header = "Proxy-Authenticate" if final.status == 407 else "WWW-Authenticate"
            cred = answer_challenge(final.challenges(header)[0], method, request_uri,
                                    auth.username, auth.password)
            authorization = [("Proxy-Authorization" if final.status == 407 else "Authorization",
                              cred.to_header())]
        return got


def contact_uri(response: Response) -> str | None:
    """The first Contact URI of a response (where in-dialog requests go), None if unusable."""
    try:
        contacts = response.contacts
    except SipParseError:
        return None
    if contacts and contacts[0].address is not None:
        return str(contacts[0].address.uri)
    return None
