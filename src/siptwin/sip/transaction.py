"""SIP transactions (RFC 3261 §17 with the RFC 6026 corrections), sans-IO, in injected time.

One :class:`TransactionLayer` holds every client and server transaction of a SIP element and
one timer heap. It never touches a socket and never reads a clock: every call takes ``now``
(seconds, any monotonic origin - tests use a float they advance) and returns a list of
*effects* for the caller to carry out, in order:

* :class:`Send` - put this message on the wire to this destination;
* :class:`RequestReceived`, :class:`AckReceived`, :class:`ResponseReceived`,
  :class:`Timeout`, :class:`TransportError` - events for the transaction user (TU);
* :class:`Terminated` - a transaction is gone (its key will not be seen again);
* :class:`Dropped` - a message was discarded, with the reason (for traces).

The I/O adapter feeds received messages to :meth:`TransactionLayer.receive`, the TU answers
with :meth:`~TransactionLayer.respond` and sends with :meth:`~TransactionLayer.send_request`,
and the adapter calls :meth:`~TransactionLayer.advance` whenever
:meth:`~TransactionLayer.next_deadline` has passed.

What the layer does, per RFC 3261 §17 and RFC 6026:

* server INVITE: Proceeding (a retransmitted INVITE re-sends the last provisional and is never
  shown to the TU twice), Completed for 3xx-6xx (Timer G retransmits the final response on
  unreliable transports, T1 doubling up to T2; Timer H gives up after 64*T1 and reports a
  :class:`Timeout`), Confirmed on ACK (Timer I = T4, 0 on reliable transports), Accepted for
  2xx (RFC 6026: retransmitted INVITEs absorbed, ACKs passed to the TU, Timer L = 64*T1);
* 2xx retransmission until ACK (RFC 3261 §13.3.1.4, a UAS core duty the layer performs for
  the TU unless told not to): T1 doubling to T2 on unreliable transports; after 64*T1 without
  an ACK the TU gets ``Timeout(key, "2xx-ack")`` - the call is torn down (Twilio's 32022);
* server non-INVITE: Trying, Proceeding, Completed with Timer J (64*T1, 0 on reliable);
  retransmitted requests re-send the last response;
* client INVITE: Timer A (T1 doubling, unreliable only), Timer B (64*T1) timeout; for 3xx-6xx
  the ACK is built and sent here (:func:`build_ack`) and Timer D (32 s, 0 on reliable)
  absorbs retransmitted finals; 2xx goes to the TU and the transaction waits in Accepted
  (RFC 6026 Timer M = 64*T1) passing 2xx retransmissions up;
* client non-INVITE: Timer E (T1 doubling to T2; T2 once a provisional arrived), Timer F
  (64*T1) timeout, Timer K (T4, 0 on reliable).

Matching: a request whose top Via branch starts with ``z9hG4bK`` matches by branch, sent-by
and method, ACK matching the INVITE transaction and CANCEL being its own transaction
(§17.2.3). Other requests fall back to RFC 2543 matching on Request-URI, To tag, From tag,
Call-ID, CSeq number and top Via, the ACK's To tag being compared with the tag of the response
the transaction sent (RFC 4475 §3.4.1, ``inv2543``). Responses match a client transaction by
top Via branch and CSeq method (§17.1.3).

Not done here: the 100 (Trying) the server INVITE transaction would send after 200 ms - the
siptwin pipeline answers 100 at once; choosing a response destination per §18.2.2 - responses
go back to the ``source`` the request came from, which is what the transport adapter gives.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
from array import array
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from mypy_extensions import mypyc_attr

from .errors import SipParseError
from .frozen import quicken
from .headers import MAGIC_COOKIE, Headers, Via
from .message import Request, Response, make_request
from .routing import Hop
from .uri import HOST_KEYS, host_key

Address = Any
"""Whatever the transport adapter uses to name a peer: ``(host, port)``, a connection, ..."""

TxKey = Any
"""Opaque, hashable transaction key, as handed out in effects: one string for a server
transaction matched by its RFC 3261 branch, a tuple for the others."""


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 64 random bits."""
    return MAGIC_COOKIE + secrets.token_hex(8)


@mypyc_attr(native_class=False)  # mypyc: a native class cannot subclass RuntimeError
class TransactionError(RuntimeError):
    """The TU asked for something the transaction cannot do (unknown key, wrong state)."""


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2, T4 and the derived timers (RFC 3261 Table 4); ``None`` means the RFC value."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_b: float | None = None  # INVITE client timeout, 64*T1
    timer_d: float = 32.0  # client INVITE Completed wait, "> 32 s" on unreliable transports
    timer_f: float | None = None  # non-INVITE client timeout, 64*T1
    timer_h: float | None = None  # wait for ACK of a non-2xx final, 64*T1
    timer_j: float | None = None  # non-INVITE server Completed wait, 64*T1
    timer_l: float | None = None  # RFC 6026 server Accepted wait, 64*T1
    timer_m: float | None = None  # RFC 6026 client Accepted wait, 64*T1
    ack_wait: float | None = None  # give-up for the ACK of a 2xx, 64*T1 (Twilio 32022)

    def _or64(self, value: float | None) -> float:
        return 64 * self.t1 if value is None else value

    @property
    def b(self) -> float:
        return self._or64(self.timer_b)

    @property
    def f(self) -> float:
        return self._or64(self.timer_f)

    @property
    def h(self) -> float:
        return self._or64(self.timer_h)

    @property
    def j(self) -> float:
        return self._or64(self.timer_j)

    @property
    def l(self) -> float:  # noqa: E743 - the RFC's name
        return self._or64(self.timer_l)

    @property
    def m(self) -> float:
        return self._or64(self.timer_m)

    @property
    def ack(self) -> float:
        return self._or64(self.ack_wait)


class State(StrEnum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


# ---------------------------------------------------------------------------- effects


class Effect:
    """Base class of everything the layer asks its caller to do or to know."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Send(Effect):
    """Transmit ``message`` to ``destination`` (for a server transaction: the request's source)."""

    message: Request | Response
    destination: Address
    key: TxKey | None = None
    retransmission: bool = False


@dataclass(frozen=True, slots=True)
class RequestReceived(Effect):
    """A new request for the TU (never a retransmission, never an ACK).

    For a CANCEL, ``cancels`` is the key of the INVITE server transaction it matches (§9.2),
    or None when there is none (the TU then answers 481).
    """

    key: TxKey
    request: Request
    source: Address
    cancels: TxKey | None = None


@dataclass(frozen=True, slots=True)
class AckReceived(Effect):
    """An ACK for a 2xx (or one matching nothing) for the TU/dialog.

    ``key`` is the INVITE server transaction it acknowledges when known; ACKs of non-2xx
    responses are absorbed by the transaction and never appear here.
    """

    request: Request
    source: Address
    key: TxKey | None = None


@dataclass(frozen=True, slots=True)
class ResponseReceived(Effect):
    """A response for the TU; ``key`` is None for a response matching no client transaction."""

    response: Response
    key: TxKey | None = None


@dataclass(frozen=True, slots=True)
class Timeout(Effect):
    """A transaction gave up: timer "B", "F", "H", or "2xx-ack" (no ACK for our 2xx)."""

    key: TxKey
    timer: str


@dataclass(frozen=True, slots=True)
class TransportError(Effect):
    key: TxKey


@dataclass(frozen=True, slots=True)
class Terminated(Effect):
    key: TxKey
    state: State  # the state it left


@dataclass(frozen=True, slots=True)
class Dropped(Effect):
    message: Request | Response
    source: Address
    reason: str


for _effect in (Send, RequestReceived, AckReceived, ResponseReceived, Timeout, TransportError,
                Terminated, Dropped):
    quicken(_effect)


# ---------------------------------------------------------------------------- helpers


def _top_via(message: Request | Response) -> Via | None:
    try:
        return message.top_via
    except SipParseError:
        return None


def _top_via_text(message: Request | Response) -> str:
    via = _top_via(message)
    if via is not None:
        return str(via)
    values = message.headers.values("Via")
    return values[0].strip() if values else ""


def _tag(message: Request | Response, header: str) -> str | None:
    try:
        return (message.from_ if header == "From" else message.to).tag
    except SipParseError:
        return message.headers.get(header)  # raw text stands in for an unreadable header


def _call_id(message: Request | Response) -> str:
    try:
        return message.call_id
    except SipParseError:
        return message.headers.get("Call-ID") or ""


def _cseq_number(message: Request | Response) -> int | str:
    try:
        return message.cseq.number
    except SipParseError:
        raw = (message.headers.get("CSeq") or "").split()
        return raw[0] if raw else ""


def _is_reliable(message: Request | Response) -> bool:
    via = _top_via(message)
    return via is not None and via.transport not in ("UDP", "DTLS")


def server_key(request: Request, to_tag: Any = False) -> TxKey:
    """The server transaction key of ``request`` (§17.2.3); ACK maps to its INVITE.

    For RFC 2543 requests ``to_tag`` overrides the To tag taken from the request (used to
    look up the INVITE an ACK or CANCEL refers to).
    """
    views = request._views
    key = views.get("server-key")
    if key is not None:
        return key  # a message is asked for its key several times (node, layer, CANCEL)
    method = request.method
    if method == "ACK":
        method = "INVITE"
    vias = views.get("via")  # (decoded on every validated request: _top_via's look-up)
    via = vias[0] if vias else _top_via(request)
    branch = via.branch if via is not None else None
    if branch is not None and branch.startswith(MAGIC_COOKIE):  # (Via.is_rfc3261, read once)
        # Branch, sent-by and method as one string (the branch prefixed by its length, so
        # that no two keys can read the same; the host and the method hold no space): a
        # finished transaction waits out Timer J or L holding its key, and one string is
        # about half the size of a tuple of four with a string of its own for the branch.
        assert via is not None
        host = via.host
        key = views["server-key"] = \
            f"{len(branch)} {branch} {HOST_KEYS.get(host) or host_key(host)} {via.port} {method}"
        return key
    return (
        "s2543",
        method,
        request.uri_text,
        _tag(request, "From"),
        _tag(request, "To") if to_tag is False else to_tag,
        _call_id(request),
        _cseq_number(request),
        _top_via_text(request),
    )


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 3xx-6xx response (§17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and top Via (branch included) as the INVITE,
    the To of the response (with its tag), the INVITE's Route set, CSeq method ACK.
    """
    h = invite.headers
    headers: list[tuple[str, str]] = [("Via", h.values("Via")[0])]
    headers += [("Route", v) for v in h.get_all("Route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", h.get("From") or ""),
        ("To", response.headers.get("To") or h.get("To") or ""),
        ("Call-ID", h.get("Call-ID") or ""),
        ("CSeq", f"{_cseq_number(invite)} ACK"),
    ]
    return make_request("ACK", invite.uri_text, headers)


def build_cancel(request: Request) -> Request:
    """A CANCEL for ``request`` (§9.1): same Request-URI, top Via, From, To, Call-ID, Route."""
    h = request.headers
    headers: list[tuple[str, str]] = [("Via", h.values("Via")[0])]
    headers += [("Route", v) for v in h.get_all("Route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", h.get("From") or ""),
        ("To", h.get("To") or ""),
        ("Call-ID", h.get("Call-ID") or ""),
        ("CSeq", f"{_cseq_number(request)} CANCEL"),
    ]
    return make_request("CANCEL", request.uri_text, headers)


# ---------------------------------------------------------------------------- timers


class _Timed(Protocol):
    timers: list[_Timer]

    def on_timer(self, layer: TransactionLayer, name: str, when: float, out: list[Effect]) -> None: ...


class _Timer:
    __slots__ = ("owner", "name", "live")

    def __init__(self, owner: _Timed, name: str) -> None:
        # Let go of by a cancelled timer: it may wait in the heap for up to 64*T1, and
        # its owner (an ACK wait holding a 2xx, a transaction holding its messages) should
        # not wait with it.
        self.owner: _Timed | None = owner
        self.name = name
        self.live = True


# ---------------------------------------------------------------------------- finished server transactions
#
# At 1,000 calls/s an element holds 32 s of finished server transactions (Timers J and L) and
# 5 s of Confirmed ones (Timer I): tens of thousands of entries that only wait. Such a
# transaction is reduced to what it may still do - absorb retransmissions, re-send its final
# response, pass ACKs up - and stays in the layer's table of server transactions, under its
# key, as one of:
#
# * ``_CONFIRMED``: an INVITE transaction in Confirmed (Timer I), which absorbs everything;
# * ``(_RESEND, response, *peer)``: a non-INVITE transaction in Completed (Timer J), which
#   re-sends its final response to a retransmitted request;
# * ``(_ACCEPTED, *peer)``: an INVITE transaction in Accepted (Timer L, RFC 6026), which
#   absorbs retransmitted INVITEs, passes ACKs up and lets the TU re-send its 2xx.
#
# The two are plain tuples of strings, numbers and bytes (a Hop peer flattened to its
# fields, the response held as its bytes once compacted) because the cyclic collector stops
# tracking such a tuple the first time it sees one: tens of thousands of them then cost its
# passes nothing, where as objects (and their Hop) every young pass had to walk them.
# With a Hop peer (every UDP call) they are written more plainly still, as objects the
# collector never tracks at all: an Accepted entry as the text ``"<port> <transport> <host>"``
# (:func:`_peer_text`), a compacted resend entry as that text's bytes, a newline and the
# response's bytes. Until its first pass sees them, a tuple still counts towards the young
# generation's threshold and is walked once; at 1,000 calls/s these two a call were a third
# of what each young pass walked, and made the passes come that much more often.
#
# Entries of one kind all wait equally long, so one first-in first-out queue per kind expires
# them (:class:`_Expiry`), without a timer object each. Only RFC 3261 keys are reduced: the
# ACK of an RFC 2543 INVITE is matched by the To tag of the response, which only the full
# transaction keeps.


class _Confirmed:
    __slots__ = ()


_CONFIRMED = _Confirmed()


_RESEND = "resend"
_ACCEPTED = "accepted"


def _flat_peer(peer: Address) -> tuple[Any, ...]:
    """A peer as fields the collector need not track: a Hop's, or the peer itself."""
    if type(peer) is Hop:
        return (peer.transport, peer.host, peer.port)
    return (peer,)


def _peer_of(fields: tuple[Any, ...]) -> Address:
    """The peer that :func:`_flat_peer` flattened (an equal Hop)."""
    return Hop(*fields) if len(fields) == 3 else fields[0]


def _peer_text(fields: tuple[Any, ...]) -> str | None:
    """A flattened Hop peer as one string that :func:`_peer_from_text` reads back into an
    equal Hop (None when its fields would not come back exactly)."""
    if len(fields) != 3:
        return None
    transport, host, port = fields
    if (type(port) is not int or type(transport) is not str or type(host) is not str
            or " " in transport or "\n" in transport or "\n" in host):
        return None
    return f"{port} {transport} {host}"


def _peer_from_text(text: str) -> Hop:
    port, transport, host = text.split(" ", 2)  # (the host may hold spaces: it comes last)
    return Hop(transport, host, int(port))


def _accepted_entry(peer: Address) -> Any:
    fields = _flat_peer(peer)
    text = _peer_text(fields)
    return text if text is not None else (_ACCEPTED, *fields)


def _is_resend(entry: Any) -> bool:
    kind = type(entry)
    return kind is bytes or (kind is tuple and entry[0] is _RESEND)


def _finished_peer(entry: str | bytes | tuple[Any, ...]) -> Address:
    """The peer of an Accepted or resend entry."""
    if isinstance(entry, str):
        return _peer_from_text(entry)
    if isinstance(entry, bytes):
        return _peer_from_text(entry[: entry.index(b"\n")].decode("utf-8", "surrogatepass"))
    return _peer_of(entry[2:] if entry[0] is _RESEND else entry[1:])


def _finished_response(entry: bytes | tuple[Any, ...]) -> Response:
    """The final response of a resend entry."""
    if isinstance(entry, bytes):
        return _resent_response(entry[entry.index(b"\n") + 1 :])
    return _resent_response(entry[1])


def _compact_resend(entry: tuple[Any, ...]) -> bytes | tuple[Any, ...]:
    """A resend entry with its response as bytes (less than half the size of the parsed
    message, and re-sent exactly as sent) when they parse back into the same message;
    with a Hop peer, all of it as bytes (see above)."""
    response = entry[1]
    if not isinstance(response, Response):
        return entry
    response.drop_views()
    # The bytes come back as the same message only when its fields split back as sent.
    if (response.headers.pack() and " " not in response.version
            and "\r" not in response.reason and "\n" not in response.reason):
        peer = _peer_text(entry[2:])
        if peer is not None:
            return peer.encode("utf-8", "surrogatepass") + b"\n" + response.to_bytes()
        return (entry[0], response.to_bytes(), *entry[2:])
    return entry


def _resent_response(data: Response | bytes) -> Response:
    """The final response of a resend entry again; it serialises to the bytes first sent."""
    if isinstance(data, Response):
        return data
    first = data.index(b"\r\n")
    end = data.index(b"\r\n\r\n", first)  # == first when there is no header field
    version, status, reason = data[:first].decode("utf-8", "surrogateescape").split(" ", 2)
    headers = Headers.packed(data[first + 2 : end + 2].decode("utf-8", "surrogateescape"))
    return Response(int(status), reason, headers, data[end + 4 :], version)


class _Expiry:
    """The finished server transactions of one kind, in the order they expire: their keys,
    and their expiry times as 8-byte doubles (a float object would be 24 bytes more)."""

    __slots__ = ("state", "keys", "_times", "_head")

    def __init__(self, state: State) -> None:
        self.state = state  # the state they are in, and leave
        self.keys: deque[TxKey] = deque()
        self._times = array("d")  # from _head on: the time of each of keys, in order
        self._head = 0

    def first(self) -> float:
        """When the first one expires (infinity when there is none)."""
        return self._times[self._head] if self.keys else _NEVER

    def add(self, key: TxKey, when: float) -> None:
        times = self._times
        if not self.keys or times[-1] <= when:
            times.append(when)
            self.keys.append(key)
            return
        # Due before the last one (the timer configuration changed): keep the order.
        i = len(times)
        while i > self._head and times[i - 1] > when:
            i -= 1
        times.insert(i, when)
        self.keys.insert(i - self._head, key)

    def pop(self) -> TxKey:
        """The first one, taken out."""
        self._head += 1
        if self._head >= 4096 and self._head * 2 >= len(self._times):
            del self._times[: self._head]  # amortised O(1): gives back the time of those gone
            self._head = 0
        return self.keys.popleft()

    def remove(self, key: TxKey) -> None:
        """An entry forgotten before its time (rare: O(n))."""
        try:
            i = self.keys.index(key)
        except ValueError:
            return
        del self.keys[i]
        del self._times[self._head + i]


@dataclass(frozen=True, slots=True)
class FinishedTransaction:
    """What :meth:`TransactionLayer.transaction` shows of a reduced server transaction."""

    key: TxKey
    state: State
    peer: Address
    last_response: Response | None = None  # what a retransmitted request gets
    request: Request | None = None  # never kept

    @property
    def method(self) -> str:
        return str(self.key).rsplit(" ", 1)[-1]  # (only RFC 3261 keys are reduced)


# ---------------------------------------------------------------------------- transactions


class Transaction:
    """State common to the four transaction kinds."""

    __slots__ = ("key", "method", "request", "peer", "reliable", "state", "timers", "interval",
                 "last_response")
    kind = "transaction"

    def __init__(self, key: TxKey, request: Request, peer: Address, reliable: bool, state: State) -> None:
        self.key = key
        self.method = request.method
        # A server transaction lets go of its request at its final response (and of the
        # response once nothing can ask for it again): what waits out Timers J, L and I
        # is then its key, state and timers, not the call's messages (1,000 calls/s keep
        # 32 s of transactions).
        self.request: Request | None = request
        self.peer = peer  # where our messages go: the request's source, or the next hop
        self.reliable = reliable
        self.state = state
        self.timers: list[_Timer] = []  # at most two; a list is half a dict's size
        self.interval = 0.0  # current retransmission interval
        self.last_response: Response | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state.value}>"

    def sent(self) -> Request:
        """The request of a client transaction (which keeps it to the end)."""
        request = self.request
        if request is None:
            raise TransactionError(f"{self!r} no longer holds its request")
        return request

    def on_timer(self, layer: TransactionLayer, name: str, when: float, out: list[Effect]) -> None:
        raise NotImplementedError


class ServerInvite(Transaction):
    __slots__ = ("local_tag",)
    kind = "server-invite"

    def __init__(self, key: TxKey, request: Request, peer: Address, reliable: bool) -> None:
        super().__init__(key, request, peer, reliable, State.PROCEEDING)
        self.local_tag: str | None = None  # To tag of the responses sent (RFC 2543 ACK match)

    def retransmitted(self, layer: TransactionLayer, out: list[Effect]) -> None:
        # Proceeding: re-send the last provisional; Completed: the final; else absorb.
        if self.last_response is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            out.append(Send(self.last_response, self.peer, self.key, True))

    def respond(self, layer: TransactionLayer, response: Response, now: float, out: list[Effect]) -> None:
        status = response.status
        if self.state is State.ACCEPTED and 200 <= status < 300:
            out.append(Send(response, self.peer, self.key, True))  # the TU retransmits its 2xx
            return
        if self.state is not State.PROCEEDING:
            raise TransactionError(f"cannot send {status} in INVITE server state {self.state.value}")
        self.last_response = response
        if status >= 101 and isinstance(self.key, tuple):
            self.local_tag = _tag(response, "To")  # only RFC 2543 ACKs are matched by it
        out.append(Send(response, self.peer, self.key))
        if status < 200:
            return
        layer._compact_later(response)
        layer._let_go(self, dialog=status < 300)
        config = layer.config
        if status < 300:
            # Accepted absorbs retransmitted INVITEs and passes ACKs up: the 2xx is the
            # TU's to re-send (the ACK wait keeps it), the transaction needs neither message.
            self.last_response = None
            self.state = State.ACCEPTED
            if isinstance(self.key, str) and self.peer is not None:
                layer._finish(self, _accepted_entry(self.peer), layer._accepted,
                              now + config.l)
            else:
                layer._start(self, "L", now + config.l)
            return
        self.state = State.COMPLETED
        if not self.reliable:
            self.interval = config.t1
            layer._start(self, "G", now + config.t1)
        layer._start(self, "H", now + config.h)

    def acked(self, layer: TransactionLayer, now: float, out: list[Effect]) -> None:
        """An ACK matching a Completed transaction (§17.2.1)."""
        self.state = State.CONFIRMED
        self.last_response = None  # Confirmed absorbs everything: nothing is sent again
        layer._cancel(self, "G")
        layer._cancel(self, "H")
        if self.reliable:
            layer._terminate(self, out)
        elif isinstance(self.key, str):
            layer._finish(self, _CONFIRMED, layer._confirmed, now + layer.config.t4)
        else:
            layer._start(self, "I", now + layer.config.t4)

    def on_timer(self, layer: TransactionLayer, name: str, when: float, out: list[Effect]) -> None:
        if name == "G":
            if self.state is State.COMPLETED and self.last_response is not None:
                out.append(Send(self.last_response, self.peer, self.key, True))
                self.interval = min(2 * self.interval, layer.config.t2)
                layer._start(self, "G", when + self.interval)
        elif name == "H":
            out.append(Timeout(self.key, "H"))
            layer._terminate(self, out)
        else:  # I, L
            layer._terminate(self, out)


class ServerNonInvite(Transaction):
    __slots__ = ()
    kind = "server-non-invite"

    def __init__(self, key: TxKey, request: Request, peer: Address, reliable: bool) -> None:
        super().__init__(key, request, peer, reliable, State.TRYING)

    def retransmitted(self, layer: TransactionLayer, out: list[Effect]) -> None:
        if self.last_response is not None:  # Proceeding or Completed; Trying absorbs
            out.append(Send(self.last_response, self.peer, self.key, True))

    def respond(self, layer: TransactionLayer, response: Response, now: float, out: list[Effect]) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            raise TransactionError(
                f"cannot send {response.status} in non-INVITE server state {self.state.value}"
            )
        self.last_response = response
        out.append(Send(response, self.peer, self.key))
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        layer._let_go(self, dialog=False)
        self.state = State.COMPLETED
        if self.reliable:
            layer._terminate(self, out)
        elif isinstance(self.key, str):
            resend = (_RESEND, response, *_flat_peer(self.peer))  # for retransmitted requests
            layer._compact_later((self.key, resend))
            layer._finish(self, resend, layer._completed, now + layer.config.j)
        else:
            layer._compact_later(response)  # kept for retransmitted requests
            layer._start(self, "J", now + layer.config.j)

    def on_timer(self, layer: TransactionLayer, name: str, when: float, out: list[Effect]) -> None:
        layer._terminate(self, out)  # J


class ClientInvite(Transaction):
    __slots__ = ("ack",)
    kind = "client-invite"

    def __init__(self, key: TxKey, request: Request, peer: Address, reliable: bool) -> None:
        super().__init__(key, request, peer, reliable, State.CALLING)
        self.ack: Request | None = None

    def start(self, layer: TransactionLayer, now: float, out: list[Effect]) -> None:
        out.append(Send(self.sent(), self.peer, self.key))
        if not self.reliable:
            self.interval = layer.config.t1
            layer._start(self, "A", now + self.interval)
        layer._start(self, "B", now + layer.config.b)

    def on_response(self, layer: TransactionLayer, response: Response, now: float, out: list[Effect]) -> None:
        status = response.status
        state = self.state
        if state in (State.CALLING, State.PROCEEDING):
            layer._cancel(self, "A")
            layer._cancel(self, "B")
            self.last_response = response
            if status < 200:
                self.state = State.PROCEEDING
                out.append(ResponseReceived(response, self.key))
            elif status < 300:
                self.state = State.ACCEPTED
                out.append(ResponseReceived(response, self.key))
                layer._start(self, "M", now + layer.config.m)
            else:
                self.ack = build_ack(self.sent(), response)
                out.append(Send(self.ack, self.peer, self.key))
                out.append(ResponseReceived(response, self.key))
                self.state = State.COMPLETED
                if self.reliable:
                    layer._terminate(self, out)
                else:
                    layer._start(self, "D", now + layer.config.timer_d)
        elif state is State.COMPLETED:
            if status >= 300 and self.ack is not None:
                out.append(Send(self.ack, self.peer, self.key, True))
        elif state is State.ACCEPTED and 200 <= status < 300:
            out.append(ResponseReceived(response, self.key))  # the TU re-sends its ACK

    def on_timer(self, layer: TransactionLayer, name: str, when: float, out: list[Effect]) -> None:
        if name == "A":
            if self.state is State.CALLING:
                out.append(Send(self.sent(), self.peer, self.key, True))
                self.interval *= 2  # no T2 cap for INVITE (§17.1.1.2)
                layer._start(self, "A", when + self.interval)
        elif name == "B":
            if self.state is State.CALLING:
                out.append(Timeout(self.key, "B"))
                layer._terminate(self, out)
        else:  # D, M
            layer._terminate(self, out)


class ClientNonInvite(Transaction):
    __slots__ = ()
    kind = "client-non-invite"

    def __init__(self, key: TxKey, request: Request, peer: Address, reliable: bool) -> None:
        super().__init__(key, request, peer, reliable, State.TRYING)

    def start(self, layer: TransactionLayer, now: float, out: list[Effect]) -> None:
        out.append(Send(self.sent(), self.peer, self.key))
        if not self.reliable:
            self.interval = layer.config.t1
            layer._start(self, "E", now + self.interval)
        layer._start(self, "F", now + layer.config.f)

    def on_response(self, layer: TransactionLayer, response: Response, now: float, out: list[Effect]) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # Completed absorbs retransmitted finals
        self.last_response = response
        out.append(ResponseReceived(response, self.key))
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        layer._cancel(self, "E")
        layer._cancel(self, "F")
        self.state = State.COMPLETED
        if self.reliable:
            layer._terminate(self, out)
        else:
            layer._start(self, "K", now + layer.config.t4)

    def on_timer(self, layer: TransactionLayer, name: str, when: float, out: list[Effect]) -> None:
        if name == "E":
            if self.state in (State.TRYING, State.PROCEEDING):
                out.append(Send(self.sent(), self.peer, self.key, True))
                t2 = layer.config.t2
                self.interval = t2 if self.state is State.PROCEEDING else min(2 * self.interval, t2)
                layer._start(self, "E", when + self.interval)
        elif name == "F":
            out.append(Timeout(self.key, "F"))
            layer._terminate(self, out)
        else:  # K
            layer._terminate(self, out)


ServerTransaction = ServerInvite | ServerNonInvite
ClientTransaction = ClientInvite | ClientNonInvite


class _AckWait:
    """Retransmits a 2xx to an INVITE until its ACK arrives (§13.3.1.4), then or at 64*T1 ends."""

    __slots__ = ("dialog", "key", "response", "peer", "reliable", "timers", "interval")

    def __init__(self, dialog: tuple[Any, ...], tx: ServerInvite, response: Response) -> None:
        self.dialog = dialog
        self.key = tx.key
        self.response = response
        self.peer = tx.peer
        self.reliable = tx.reliable
        self.timers: list[_Timer] = []  # at most two; a list is half a dict's size
        self.interval = 0.0

    def on_timer(self, layer: TransactionLayer, name: str, when: float, out: list[Effect]) -> None:
        if name == "2xx":
            out.append(Send(self.response, self.peer, self.key, True))
            self.interval = min(2 * self.interval, layer.config.t2)
            layer._start(self, "2xx", when + self.interval)
        else:  # "2xx-ack": give up
            layer._cancel(self, "2xx")
            layer._ack_waits.pop(self.dialog, None)
            out.append(Timeout(self.key, "2xx-ack"))


_NEVER = float("inf")


def _ack_dialog(message: Request | Response) -> tuple[Any, ...]:
    """What ties an ACK to the 2xx it acknowledges: Call-ID, CSeq number, From and To tags."""
    views = message._views  # decoded already on a validated request and on our responses
    call_id, cseq, from_, to = (views.get("call-id"), views.get("cseq"), views.get("from"),
                                views.get("to"))
    if call_id is not None and cseq is not None and from_ is not None and to is not None:
        return (call_id, cseq.number, from_.tag, to.tag)
    return (_call_id(message), _cseq_number(message), _tag(message, "From"), _tag(message, "To"))


# ---------------------------------------------------------------------------- the layer


class TransactionLayer:
    """Every transaction of one SIP element, and their timers, in caller-supplied time.

    ``retransmit_2xx`` makes :meth:`respond` retransmit a 2xx to an INVITE until the ACK
    arrives (the UAS core's duty); pass ``retransmit_until_ack=False`` to :meth:`respond` to
    keep that for yourself.
    """

    def __init__(self, config: TimerConfig | None = None, *, retransmit_2xx: bool = True) -> None:
        self.config = config or TimerConfig()
        self.retransmit_2xx = retransmit_2xx
        # A live ServerTransaction, or what a finished one keeps (see _RESEND above).
        self._servers: dict[TxKey, Any] = {}
        self._clients: dict[TxKey, ClientTransaction] = {}
        self._ack_waits: dict[tuple[Any, ...], _AckWait] = {}
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._dead = 0  # cancelled timers still in the heap
        self._completed = _Expiry(State.COMPLETED)  # non-INVITE, Timer J
        self._accepted = _Expiry(State.ACCEPTED)  # INVITE, Timer L
        self._confirmed = _Expiry(State.CONFIRMED)  # INVITE, Timer I
        self._expiries = (self._completed, self._accepted, self._confirmed)
        self._next_expiry = _NEVER  # the earliest time in the three
        # Seconds: when > 0, next_deadline() puts the end of finished transactions on this
        # grid (the next multiple after it), so that a node under load forgets them a batch
        # per wake-up rather than one per wake-up (each call leaves three, Timers I, J, L).
        # Forgetting is only memory: a transaction kept a fraction of a second past its
        # timer absorbs one more retransmission at most, and advance() is unchanged.
        self.expiry_grain = 0.0
        # Messages a finished transaction keeps (the request, its final response) are
        # compacted at the layer's next call, once the caller has sent and traced them.
        # (A resend entry comes with its key: compacted, it is a new tuple.)
        self._to_compact: list[Request | Response | tuple[TxKey, tuple[Any, ...]]] = []

    def _compact_later(self, message: Request | Response | tuple[TxKey, tuple[Any, ...]]) -> None:
        self._to_compact.append(message)

    def _finish(self, tx: Transaction, entry: Any, expiry: _Expiry, when: float) -> None:
        """``tx`` waits out its last timer as ``entry`` (see _RESEND above), until ``when``."""
        self._cancel_all(tx)
        tx.last_response = None
        self._servers[tx.key] = entry
        expiry.add(tx.key, when)
        if when < self._next_expiry:
            self._next_expiry = when

    def _expiry_of(self, entry: Any) -> _Expiry:
        if entry is _CONFIRMED:
            return self._confirmed
        return self._completed if _is_resend(entry) else self._accepted

    def _forget(self, key: TxKey, entry: Any, out: list[Effect]) -> None:
        """A finished transaction ends before its time."""
        expiry = self._expiry_of(entry)
        del self._servers[key]
        expiry.remove(key)
        self._next_expiry = min([e.first() for e in self._expiries])
        out.append(Terminated(key, expiry.state))

    def _expire(self, expiry: _Expiry, out: list[Effect]) -> None:
        key = expiry.pop()
        self._servers.pop(key, None)
        self._next_expiry = min([e.first() for e in self._expiries])
        out.append(Terminated(key, expiry.state))

    def _let_go(self, tx: Transaction, *, dialog: bool) -> None:
        """A server transaction's final response is out: it no longer needs its request. An
        INVITE answered 2xx stays the TU's (its dialog keeps it for the whole call, maybe for
        hours): compacted. Any other request is freed with its last reference; compacting
        it would be wasted work."""
        request = tx.request
        if request is not None:
            if dialog:
                self._to_compact.append(request)
            tx.request = None

    def _compact_pending(self) -> None:
        servers = self._servers
        for message in self._to_compact:
            if isinstance(message, tuple):
                key, entry = message
                if servers.get(key) is entry:  # (not ended meanwhile)
                    servers[key] = _compact_resend(entry)
            else:
                message.drop_views()
        self._to_compact.clear()

    # -- inspection
    def __len__(self) -> int:
        return len(self._servers) + len(self._clients)

    def __contains__(self, key: object) -> bool:
        return key in self._servers or key in self._clients

    def transaction(self, key: TxKey) -> Transaction | FinishedTransaction | None:
        entry = self._servers.get(key)
        if entry is None:
            return self._clients.get(key)
        if isinstance(entry, Transaction):
            return entry
        if entry is _CONFIRMED:
            return FinishedTransaction(key, State.CONFIRMED, None)
        if _is_resend(entry):
            return FinishedTransaction(key, State.COMPLETED, _finished_peer(entry),
                                       _finished_response(entry))
        return FinishedTransaction(key, State.ACCEPTED, _finished_peer(entry))

    @property
    def pending_acks(self) -> int:
        """2xx responses still waiting for their ACK."""
        return len(self._ack_waits)

    # -- input from the transport
    def receive(
        self, message: Request | Response, source: Address, now: float, *, reliable: bool | None = None
    ) -> list[Effect]:
        """A message from the transport. ``reliable`` defaults to the top Via's transport."""
        out: list[Effect] = []
        # _fire, when it has anything to do (messages to compact, a timer or a finished
        # transaction due): a call passes here and in respond() a dozen times, mostly idle
        heap = self._heap
        if self._to_compact or self._next_expiry <= now or (heap and heap[0][0] <= now):
            self._fire(now, out)
        if isinstance(message, Response):
            self._receive_response(message, source, now, out)
        else:
            if reliable is None:
                reliable = _is_reliable(message)
            self._receive_request(message, source, now, reliable, out)
        return out

    def _receive_request(
        self, request: Request, source: Address, now: float, reliable: bool, out: list[Effect]
    ) -> None:
        if request.method == "ACK":
            self._receive_ack(request, source, now, out)
            return
        key = request._views.get("server-key")  # (the node has asked for it: server_key's hit)
        if key is None:
            key = server_key(request)
        entry = self._servers.get(key)
        if entry is not None:
            if isinstance(entry, (ServerInvite, ServerNonInvite)):
                entry.retransmitted(self, out)
            elif _is_resend(entry):
                out.append(Send(_finished_response(entry), _finished_peer(entry), key, True))
            return  # Accepted and Confirmed absorb a retransmitted INVITE
        tx: ServerTransaction
        if request.method == "INVITE":
            tx = ServerInvite(key, request, source, reliable)
        else:
            tx = ServerNonInvite(key, request, source, reliable)
        self._servers[key] = tx
        cancels = self._cancel_target(request) if request.method == "CANCEL" else None
        out.append(RequestReceived(key, request, source, cancels))

    def _receive_ack(self, ack: Request, source: Address, now: float, out: list[Effect]) -> None:
        invite_key = server_key(ack)
        entry = self._servers.get(invite_key)
        key: TxKey | None = invite_key
        if entry is None and isinstance(invite_key, tuple):
            # An initial INVITE had no To tag; its ACK carries the tag of our response.
            entry = self._servers.get(server_key(ack, to_tag=None))
            if not isinstance(entry, ServerInvite) or entry.local_tag != _tag(ack, "To"):
                entry = None
        if isinstance(entry, ServerInvite):
            if entry.state is State.COMPLETED:
                entry.acked(self, now, out)
                return
            if entry.state is not State.ACCEPTED:
                return  # Proceeding (premature) or Confirmed (retransmitted ACK): absorbed
            key = entry.key
        elif entry is _CONFIRMED:
            return  # a retransmitted ACK
        elif entry is None or isinstance(entry, ServerNonInvite) or _is_resend(entry):
            key = None  # (an ACK's key names an INVITE transaction: never a non-INVITE one)
        # else: an Accepted INVITE transaction, reduced; key names it
        wait = self._ack_waits.pop(_ack_dialog(ack), None)
        if wait is not None:
            self._cancel_all(wait)
            if key is None:
                key = wait.key
        out.append(AckReceived(ack, source, key))

    def _cancel_target(self, cancel: Request) -> TxKey | None:
        key = server_key(cancel)
        if isinstance(key, str):  # its method is what follows the last space
            invite_key: TxKey = key[: key.rindex(" ") + 1] + "INVITE"
        else:
            invite_key = (key[0], "INVITE", *key[2:])
        return invite_key if invite_key in self._servers else None  # (only INVITEs, by the key)

    def _receive_response(self, response: Response, source: Address, now: float, out: list[Effect]) -> None:
        via = _top_via(response)
        try:
            method = response.cseq.method
        except SipParseError:
            out.append(Dropped(response, source, "unreadable CSeq"))
            return
        if via is None or via.branch is None:
            out.append(Dropped(response, source, "no Via branch"))
            return
        tx = self._clients.get(("c", via.branch, method))
        if tx is None:
            out.append(ResponseReceived(response, None))  # stray: the core decides (§17.1.3)
            return
        tx.on_response(self, response, now, out)

    # -- input from the TU
    def respond(
        self, key: TxKey, response: Response, now: float, *, retransmit_until_ack: bool | None = None
    ) -> list[Effect]:
        """Send ``response`` on server transaction ``key``.

        A 2xx to an INVITE is retransmitted until its ACK arrives (and reported as
        ``Timeout(key, "2xx-ack")`` after 64*T1 without one) unless ``retransmit_until_ack``
        is False or the layer was built with ``retransmit_2xx=False``.
        """
        tx = self._servers.get(key)
        if tx is None:
            raise TransactionError(f"no server transaction {key!r}")
        if not 100 <= response.status <= 699:
            raise TransactionError(f"bad status {response.status}")
        out: list[Effect] = []
        heap = self._heap
        if self._to_compact or self._next_expiry <= now or (heap and heap[0][0] <= now):
            self._fire(now, out)  # (when it has anything to do: see receive)
        wanted = self.retransmit_2xx if retransmit_until_ack is None else retransmit_until_ack
        if not isinstance(tx, (ServerInvite, ServerNonInvite)):
            self._respond_finished(key, response, out)
            if wanted:
                self._await_ack(None, response, now)
            return out
        was_accepted = tx.state is State.ACCEPTED
        tx.respond(self, response, now, out)
        if isinstance(tx, ServerInvite) and 200 <= response.status < 300 and wanted:
            self._await_ack(tx if not was_accepted else None, response, now)
        return out

    def _respond_finished(self, key: TxKey, response: Response, out: list[Effect]) -> None:
        """The TU answers a reduced transaction: an Accepted INVITE's 2xx is sent again (the
        TU retransmits it); anything else is refused as by the full transaction."""
        status = response.status
        entry = self._servers.get(key)  # (the timers just fired may have compacted it...)
        if entry is None:  # (... or ended it)
            raise TransactionError(f"cannot send {status} in server state {State.TERMINATED.value}")
        state = self._expiry_of(entry).state
        if state is not State.ACCEPTED or not 200 <= status < 300:
            kind = "non-INVITE" if _is_resend(entry) else "INVITE"
            raise TransactionError(f"cannot send {status} in {kind} server state {state.value}")
        out.append(Send(response, _finished_peer(entry), key, True))

    def _await_ack(self, tx: ServerInvite | None, response: Response, now: float) -> None:
        """Retransmit the 2xx of ``tx`` until its ACK; ``tx`` is None for a 2xx the TU sends
        again, which only replaces the one an ACK wait re-sends."""
        dialog = _ack_dialog(response)
        wait = self._ack_waits.get(dialog)
        if wait is not None:
            wait.response = response  # the TU re-sent or changed its 2xx
            return
        if tx is None:
            return  # the ACK already came
        wait = self._ack_waits[dialog] = _AckWait(dialog, tx, response)
        if not tx.reliable:
            wait.interval = self.config.t1
            self._start(wait, "2xx", now + wait.interval)
        self._start(wait, "2xx-ack", now + self.config.ack)

    def send_request(
        self, request: Request, destination: Address, now: float, *, reliable: bool | None = None
    ) -> tuple[TxKey, list[Effect]]:
        """Start a client transaction for ``request`` (its top Via needs an RFC 3261 branch).

        ``reliable`` defaults to the top Via's transport. ACKs for 2xx are not sent through
        transactions: the TU sends them itself.
        """
        if request.method == "ACK":
            raise TransactionError("an ACK is not sent through a client transaction")
        via = _top_via(request)
        if via is None or not via.is_rfc3261:
            raise TransactionError("the request needs a top Via with a z9hG4bK branch")
        key: TxKey = ("c", via.branch, request.method)
        if key in self._clients:
            raise TransactionError(f"client transaction {key!r} already exists")
        if reliable is None:
            reliable = via.transport not in ("UDP", "DTLS")
        out: list[Effect] = []
        self._fire(now, out)
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = ClientInvite(key, request, destination, reliable)
        else:
            tx = ClientNonInvite(key, request, destination, reliable)
        self._clients[key] = tx
        tx.start(self, now, out)
        return key, out

    def abandon(self, key: TxKey) -> list[Effect]:
        """Forget a server transaction the TU will never answer (a request dropped in silence).

        Without this a silently dropped INVITE would sit in Proceeding forever - no timer runs
        before a final response - and a flood of them would grow memory without bound. A
        retransmission of the request then starts a new transaction, and is judged again.
        """
        out: list[Effect] = []
        entry = self._servers.get(key)
        if isinstance(entry, (ServerInvite, ServerNonInvite)):
            self._terminate(entry, out)
        elif entry is not None:
            self._forget(key, entry, out)
        return out

    def transport_error(self, key: TxKey, now: float) -> list[Effect]:
        """The transport could not deliver a message of transaction ``key`` (§17.1.4, §17.2.4)."""
        out: list[Effect] = []
        self._fire(now, out)
        entry = self._servers.get(key)
        if entry is None:
            entry = self._clients.get(key)
            if entry is None:
                return out
        out.append(TransportError(key))
        if isinstance(entry, Transaction):
            if not (isinstance(entry, ServerInvite) and entry.state is State.ACCEPTED):
                self._terminate(entry, out)
        elif self._expiry_of(entry) is not self._accepted:
            self._forget(key, entry, out)
        return out

    def transport_failed_to(self, destination: Address, now: float) -> list[Effect]:
        """A message to ``destination`` could not be delivered (a refused or broken
        connection): every client transaction sending there fails now (§17.1.4) rather
        than at Timer B/F."""
        out: list[Effect] = []
        for key in [k for k, tx in self._clients.items() if tx.peer == destination]:
            out.extend(self.transport_error(key, now))
        return out

    # -- time
    def next_deadline(self) -> float | None:
        """When :meth:`advance` next has something to do, or None when no timer runs (the
        end of a finished transaction counted on the ``expiry_grain`` grid)."""
        heap = self._heap
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
            self._dead -= 1
        expiry = self._next_expiry
        if expiry != _NEVER and self.expiry_grain > 0:
            expiry = (expiry // self.expiry_grain + 1) * self.expiry_grain
        if heap:
            first = heap[0][0]
            return first if first <= expiry else expiry
        return expiry if expiry != _NEVER else None

    def advance(self, now: float) -> list[Effect]:
        """Fire every timer due at or before ``now``, in deadline order."""
        out: list[Effect] = []
        self._fire(now, out)
        return out

    def _fire(self, now: float, out: list[Effect]) -> None:
        if self._to_compact:  # every entry point passes here first
            self._compact_pending()
        heap = self._heap
        while True:
            if not (heap and heap[0][0] <= now and heap[0][0] <= self._next_expiry):
                if self._next_expiry > now:
                    break
                # The finished transaction due first ends (heap timers due at the same time
                # went first).
                for expiry in self._expiries:
                    if expiry.first() == self._next_expiry:
                        self._expire(expiry, out)
                        break
                else:  # (cannot happen: _next_expiry is the earliest of their first times)
                    self._next_expiry = min([e.first() for e in self._expiries])
                    if self._next_expiry > now:
                        break
                continue
            when, _, timer = heapq.heappop(heap)
            if not timer.live:
                self._dead -= 1
                continue
            timer.live = False
            owner = timer.owner
            if owner is None:
                continue
            owner.timers.remove(timer)  # a live timer is always its owner's
            # Timers re-armed by a handler are scheduled from their due time, not from `now`,
            # so the retransmission schedule stays exact however late advance() is called.
            owner.on_timer(self, timer.name, when, out)

    def _start(self, owner: _Timed, name: str, when: float) -> None:
        if owner.timers:  # (mostly none: a new transaction's first, an ACK wait's)
            self._cancel(owner, name)
        timer = _Timer(owner, name)
        owner.timers.append(timer)
        heapq.heappush(self._heap, (when, next(self._seq), timer))

    def _cancel(self, owner: _Timed, name: str) -> None:
        timers = owner.timers
        for timer in timers:
            if timer.name == name:
                break
        else:
            return
        timers.remove(timer)
        timer.live = False
        timer.owner = None
        self._dead += 1
        # Most cancelled timers (an ACK wait's two, Timers G and H) die within
        # milliseconds of being set and would otherwise wait out their 32 s in the heap.
        if self._dead > 256 and self._dead > len(self._heap) // 4:
            self._heap = [entry for entry in self._heap if entry[2].live]
            heapq.heapify(self._heap)
            self._dead = 0

    def _cancel_all(self, owner: _Timed) -> None:
        for timer in list(owner.timers):
            self._cancel(owner, timer.name)

    def _terminate(self, tx: Transaction, out: list[Effect]) -> None:
        self._cancel_all(tx)
        left = tx.state
        tx.state = State.TERMINATED
        table: dict[TxKey, Any] = (self._clients if isinstance(tx, (ClientInvite, ClientNonInvite))
                                   else self._servers)
        if table.get(tx.key) is tx:
            del table[tx.key]
        out.append(Terminated(tx.key, left))


__all__ = [
    "AckReceived",
    "Address",
    "ClientInvite",
    "ClientNonInvite",
    "Dropped",
    "Effect",
    "FinishedTransaction",
    "RequestReceived",
    "ResponseReceived",
    "Send",
    "ServerInvite",
    "ServerNonInvite",
    "State",
    "Terminated",
    "Timeout",
    "TimerConfig",
    "Transaction",
    "TransactionError",
    "TransactionLayer",
    "TransportError",
    "TxKey",
    "build_ack",
    "build_cancel",
    "new_branch",
    "server_key",
]
