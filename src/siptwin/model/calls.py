"""Call records (CA…) and the SIP trace of each call, kept by the twin.

A record is created when an INVITE passes the pipeline (spec §4.2 step 9) and also, without a
SID, for every rejected or dropped INVITE, so tests, the report and diagnostics can see what
happened to any call by its Call-ID.
"""

from __future__ import annotations

import pickle
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

from .codes import CallStatus
from .rates import RateLimit
from .sids import is_call_sid

MAX_TRACE_ENTRIES = 64  # a normal call has about a dozen messages


@dataclass(slots=True)
class TraceEntry:
    at: float  # wall-clock seconds
    direction: str  # "in" or "out"
    transport: str
    peer: str  # "ip:port"
    local: str  # "ip:port"
    data: bytes

    @property
    def first_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


# A packed trace or webhook list is a few kilobytes of pickled SIP and form fields that
# differ little from call to call; deflate primed with a typical one (zlib's preset
# dictionary) starts from that text instead of from nothing, so a record keeps about half
# as many bytes, and deflates faster. Only this module packs and unpacks with it, in the
# twin's own processes: changing it changes no stored format.
_SAMPLE_SIP = (
    b"INVITE sip:1000@example.sip.us1.twilio.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1-1;rport\r\n"
    b"From: <sip:alice@192.0.2.10:5060>;tag=1\r\nTo: <sip:1000@example.sip.us1.twilio.com>\r\n"
    b"Call-ID: 1@192.0.2.10\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.10:5060>\r\n"
    b"Max-Forwards: 70\r\nUser-Agent: \r\nAllow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
    b"Supported: \r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    b"SIP/2.0 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Digest realm="sip.twilio.com", qop="auth", nonce="", opaque=""\r\n'
    b"Server: Twilio\r\nContent-Length: 0\r\n\r\n"
    b"ACK sip:1000@example.sip.us1.twilio.com SIP/2.0\r\nCSeq: 1 ACK\r\n"
    b'Proxy-Authorization: Digest username="",realm="sip.twilio.com",cnonce="",nc=00000001,'
    b'qop=auth,uri="sip:",nonce="",response="",algorithm=MD5,opaque=""\r\n'
    b"SIP/2.0 100 trying -- your call is important to us\r\nServer: Twilio Gateway\r\n"
    b"SIP/2.0 180 Ringing\r\nContact: <sip:127.0.1.1:5060>\r\n"
    b"SIP/2.0 200 OK\r\nAllow: ACK, BYE, CANCEL, INVITE, OPTIONS, REFER, NOTIFY\r\n"
    b"s=Twilio Media Gateway\r\nBYE sip: SIP/2.0\r\nCSeq: 2 BYE\r\nCSeq: 3 BYE\r\n"
)
_SAMPLE_WEBHOOK = {
    "kind": "voice", "method": "POST", "url": "https://",
    "params": [(name, "") for name in (
        "AccountSid", "ApiVersion", "CallSid", "CallStatus", "Called", "Caller", "Direction",
        "From", "SipCallId", "SipDomain", "SipDomainSid", "SipSourceIp", "To", "SipUsername")],
    "headers": {"X-Twilio-Signature": "", "I-Twilio-Idempotency-Token": "", "User-Agent": "",
                "Content-Type": "application/x-www-form-urlencoded"},
    "at": 1.0, "status": 200, "error": None, "elapsed": 0.0, "attempts": 1, "offline": False,
}
_PRESET = pickle.dumps(([(1.0, way, "udp", "192.0.2.10:5060", "127.0.1.1:5060", _SAMPLE_SIP)
                         for way in ("in", "out")], [_SAMPLE_WEBHOOK]), protocol=5)
# Raw deflate (no header or checksum: the bytes never leave the twin's processes). One
# record alone is a few kilobytes: an 8 KiB window and memLevel 5 pack it as well as zlib's
# defaults (the same size within 1 %) with a compressor state of about 50 KB instead of
# 200 KB, which is most of the cost of packing one record. A batch of records (pack_calls)
# gets zlib's default window and memLevel at level 2: a call's SIP text repeats much of the
# previous call's, about 5 KB earlier, which the small window barely reaches; with the whole
# previous call in reach deflate emits fewer, longer matches: on the bench's records about
# 40 % less CPU and 15 % fewer bytes per call, the larger state set up once per batch.
# (Levels 1-3 are zlib's fast matcher; 2 packs a little smaller than 1 at the same speed.)
_ONE = (1, -13, 5)  # level, raw window bits, memLevel
_BATCH = (2, -15, 8)
_WBITS = -15  # inflates either


ItemT = TypeVar("ItemT")


def _deflate(value: Any, settings: tuple[int, int, int] = _ONE) -> bytes:
    level, wbits, mem_level = settings
    packer = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, zlib.Z_DEFAULT_STRATEGY,
                              _PRESET)
    return packer.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) + packer.flush()


def _inflate(blob: bytes) -> Any:
    # Only ever our own bytes, written by _deflate: unpickling them is safe.
    return pickle.loads(zlib.decompressobj(_WBITS, zdict=_PRESET).decompress(blob))


class _Packed(Sequence[ItemT]):
    """A sequence kept compressed (what an ended call keeps: the registry holds up to a couple
    of thousand calls); reads decompress on demand, so nothing is lost.

    The blob holds a tuple of parts and this sequence is part ``_part`` of it: an ended call's
    trace and webhook requests are packed together (:meth:`Call.pack`), or those of a batch
    of calls (:func:`pack_calls`), one compressor and one final flush for all, and each keeps
    a reference to the same bytes."""

    __slots__ = ("_blob", "_count", "_part")
    noun = "items"

    def __init__(self, blob: bytes, count: int, part: int) -> None:
        self._blob, self._count, self._part = blob, count, part

    def _rows(self) -> Any:
        return _inflate(self._blob)[self._part]

    def unpack(self) -> list[ItemT]:
        raise NotImplementedError

    @property
    def packed_size(self) -> int:
        """The bytes of the blob (shared with the other part packed with it, if any)."""
        return len(self._blob)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[ItemT]:
        return iter(self.unpack())

    @overload
    def __getitem__(self, index: int) -> ItemT: ...
    @overload
    def __getitem__(self, index: slice) -> list[ItemT]: ...
    def __getitem__(self, index: int | slice) -> ItemT | list[ItemT]:
        return self.unpack()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._count} {self.noun}, {len(self._blob)} bytes>"


def _trace_rows(entries: Sequence[TraceEntry]) -> list[tuple[Any, ...]]:
    return [(e.at, e.direction, e.transport, e.peer, e.local, e.data) for e in entries]


class PackedTrace(_Packed[TraceEntry]):
    """The trace of an ended call: SIP text shrinks about four times (``Call.record`` unpacks
    it if a late message arrives)."""

    __slots__ = ()
    noun = "messages"

    def __init__(self, entries: Sequence[TraceEntry], blob: bytes | None = None,
                 part: int = 0) -> None:
        if blob is None:
            blob = _deflate((_trace_rows(entries),))
        super().__init__(blob, len(entries), part)

    def unpack(self) -> list[TraceEntry]:
        return [TraceEntry(*row) for row in self._rows()]


class PackedWebhooks(_Packed[dict[str, Any]]):
    """The webhook requests of an ended call (``Call.webhooks``): a record as made is about
    3 KB of dicts and strings (the request's parameters and headers), about a hundred bytes
    packed."""

    __slots__ = ()
    noun = "requests"

    def __init__(self, records: Sequence[dict[str, Any]], blob: bytes | None = None,
                 part: int = 0) -> None:
        if blob is None:
            blob = _deflate((list(records),))
        super().__init__(blob, len(records), part)

    def unpack(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self._rows()
        return records


def pack_together(entries: list[TraceEntry], records: list[dict[str, Any]]
                  ) -> tuple[PackedTrace, PackedWebhooks]:
    """A trace and webhook requests in one blob: packing each alone costs a compressor set up
    and flushed twice per call, about half of what packing costs."""
    blob = _deflate((_trace_rows(entries), records))
    return PackedTrace(entries, blob, 0), PackedWebhooks(records, blob, 1)


def pack_calls(calls: Sequence[Call]) -> None:
    """Pack the traces and webhook requests of several ended calls into one blob.

    One compressor and one flush serve the whole batch instead of one each per call, and the
    calls' SIP text, alike from call to call, deflates against the previous call's: about half
    the CPU and half the bytes of packing each call alone. Reading one record inflates the
    batch (a few hundred microseconds, for diagnostics and the REST API, not per message)."""
    parts: list[Any] = []
    owners: list[tuple[Call, list[TraceEntry] | None, list[dict[str, Any]] | None]] = []
    for call in calls:
        trace, webhooks = call.trace, call.webhooks
        open_trace = trace if isinstance(trace, list) and trace else None
        open_webhooks = webhooks if isinstance(webhooks, list) and webhooks else None
        if open_trace is None and open_webhooks is None:
            continue
        owners.append((call, open_trace, open_webhooks))
        parts.append(_trace_rows(open_trace) if open_trace is not None else None)
        parts.append(open_webhooks)
    if not owners:
        return
    blob = _deflate(tuple(parts), _BATCH)
    for index, (call, open_trace, open_webhooks) in enumerate(owners):
        if open_trace is not None:
            call.trace = PackedTrace(open_trace, blob, 2 * index)
        if open_webhooks is not None:
            call.webhooks = PackedWebhooks(open_webhooks, blob, 2 * index + 1)


# Ended calls packed together (see pack_calls): at most this many wait unpacked, about 15 KB
# each, and a batch of records this size deflates to about half the bytes per call.
PACK_BATCH = 16


@dataclass
class Alert:
    code: int
    message: str
    at: float
    detail: str = ""


# Notes the node writes and diagnostics reads (a rule matches the prefix).
BYE_UNDELIVERED_NOTE = "BYE not delivered to"
TLS_FAILED_NOTE = "TLS handshake failed:"
# The detail of an alert raised by <Dial> (not by the voice webhook) starts with this.
DIAL_ALERT_PREFIX = "<Dial>"


@dataclass(slots=True)
class Call:
    call_id: str  # the SIP Call-ID
    region: str
    source_ip: str
    source_port: int
    transport: str
    created_at: float
    sid: str | None = None  # set once the INVITE is accepted
    account_sid: str | None = None
    domain_sid: str | None = None
    domain_name: str | None = None
    edge_label: str | None = None
    request_uri: str = ""
    from_uri: str = ""
    to_uri: str = ""
    username: str | None = None
    status: str = CallStatus.RECEIVED  # one of CallStatus
    final_status: int | None = None  # the SIP final response to the INVITE (None: silence)
    decided_by: str | None = None  # the Stage that rejected the call
    answered_at: float | None = None
    ended_at: float | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    # Tuples, added to by alert() and note(): most calls have none, and the empty tuple is one
    # shared object that the cyclic collector does not track, where two lists per record were
    # two more objects for every collector pass to walk for as long as the record is kept.
    alerts: tuple[Alert, ...] = ()
    notes: tuple[str, ...] = ()
    trace: list[TraceEntry] | PackedTrace = field(default_factory=list)
    trace_dropped: int = 0  # messages past MAX_TRACE_ENTRIES
    webhooks: list[dict[str, Any]] | PackedWebhooks = field(default_factory=list)
    # Set by the voice layer: the domain's processing region (whose REST API lists the call)
    # and RTP counters of the answered call.
    processing_region: str | None = None
    media: dict[str, Any] = field(default_factory=dict)
    # "REGISTER" for a registration exchange the registrar keeps for diagnostics (no SID);
    # "TLS" for a TLS handshake that reached a plain TCP port (no SIP at all).
    method: str = "INVITE"
    # Which process of `siptwin up --workers N` answered: 0 the parent, 1.. a worker.
    process: int = 0

    def record(self, entry: TraceEntry) -> None:
        """Add a message to the trace; a retransmission storm stops being kept past a bound."""
        trace = self.trace
        if type(trace) is not list:  # packed: a message after the call ended
            trace = self.trace = trace.unpack()  # type: ignore[union-attr]
        if len(trace) < MAX_TRACE_ENTRIES:
            trace.append(entry)
        else:
            self.trace_dropped += 1

    def add_webhook(self, record: dict[str, Any]) -> None:
        """Add a webhook request; one made after the call ended (a status callback) is packed
        with the others."""
        webhooks = self.webhooks
        if isinstance(webhooks, PackedWebhooks):
            self.webhooks = PackedWebhooks([*webhooks.unpack(), record])
        else:
            webhooks.append(record)

    def pack(self) -> None:
        """Compress the trace and the webhook requests of a call that has ended (see
        :class:`PackedTrace`): the registry keeps up to 2,000 records."""
        trace, webhooks = self.trace, self.webhooks
        trace_open = isinstance(trace, list) and bool(trace)
        webhooks_open = isinstance(webhooks, list) and bool(webhooks)
        if trace_open and webhooks_open:
            self.trace, self.webhooks = pack_together(trace, webhooks)  # type: ignore[arg-type]
        elif trace_open:
            self.trace = PackedTrace(trace)
        elif webhooks_open:
            self.webhooks = PackedWebhooks(webhooks)  # type: ignore[arg-type]

    @property
    def duration(self) -> int:
        if self.answered_at is None or self.ended_at is None:
            return 0
        return int(round(self.ended_at - self.answered_at))

    def alert(self, code: int, message: str, at: float, detail: str = "") -> None:
        self.alerts += (Alert(code, message, at, detail),)

    def note(self, *texts: str) -> None:
        """Add notes (for diagnostics and the report) in this order."""
        if texts:
            self.notes += texts


CallListener = Callable[[Call, str], None]


class CallLookup(Protocol):
    """Read access to a twin's call records: a :class:`CallRegistry` in this process, or the
    records of other processes read through their side channels."""

    def get(self, call_id: str) -> Call | None: ...
    def by_sid(self, sid: str) -> Call | None: ...
    def all(self) -> list[Call]: ...
    def last(self) -> Call | None: ...


class CallRegistry:
    """Calls by Call-ID, most recent last; bounded so a flood cannot exhaust memory."""

    # Enough for `siptwin explain`, the report and diagnostics; bounded so that a load test
    # or a flood keeps the twin's memory flat (each record holds its SIP trace).
    def __init__(self, max_calls: int = 2_000) -> None:
        self._calls: OrderedDict[str, Call] = OrderedDict()
        # A call by its Call-ID: the dict's own look-up, atomic under the GIL (OrderedDict's
        # is C code), no lock and no method around it, as the node asks for every message it
        # traces. Iterating and changing the order take the lock.
        self.get: Callable[[str], Call | None] = self._calls.get
        self._max = max_calls
        self._lock = threading.Lock()
        self._listeners: list[CallListener] = []
        self._to_pack: list[Call] = []  # ended, waiting to be packed as one batch
        self.call_rate = RateLimit()  # calls per second per account (32013), every edge

    def add_listener(self, listener: CallListener) -> None:
        self._listeners.append(listener)

    def notify(self, call: Call, event: str) -> None:
        for listener in list(self._listeners):
            listener(call, event)

    def pack_later(self, call: Call) -> None:
        """Keep an ended call's record compressed from now on, packed with the next ones to
        end (:func:`pack_calls`): until :data:`PACK_BATCH` have ended it stays as it is."""
        with self._lock:
            self._to_pack.append(call)
            if len(self._to_pack) < PACK_BATCH:
                return
            batch, self._to_pack = self._to_pack, []
        pack_calls(batch)

    def pack_pending(self) -> None:
        """Pack what :meth:`pack_later` holds now (e.g. before measuring memory)."""
        with self._lock:
            batch, self._to_pack = self._to_pack, []
        pack_calls(batch)

    def by_sid(self, sid: str) -> Call | None:
        with self._lock:  # newest first: the calls asked about are mostly recent
            return next((c for c in reversed(self._calls.values()) if c.sid == sid), None)

    def put(self, call: Call) -> None:
        with self._lock:
            self._calls[call.call_id] = call
            self._calls.move_to_end(call.call_id)
            while len(self._calls) > self._max:
                self._calls.popitem(last=False)

    def all(self) -> list[Call]:
        with self._lock:
            return list(self._calls.values())

    def last(self) -> Call | None:
        with self._lock:
            return next(reversed(self._calls.values()), None) if self._calls else None


def find_call(registry: CallLookup, ref: str) -> Call | None:
    """A call by CallSid (CA…), by SIP Call-ID, or ``last`` / ``--last``."""
    if ref in ("last", "--last"):
        return registry.last()
    if is_call_sid(ref):
        found = registry.by_sid(ref)
        if found is not None:
            return found
    return registry.get(ref)
