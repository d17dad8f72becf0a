"""SIP messages: stage-one framing and parsing, lazily decoded typed views, serialising.

Stage one (this module) cuts a message out of a datagram or a stream, splits the start line,
undoes line folding and keeps every header field in order with its raw text. Stage two (the
typed properties) decodes a header only when somebody asks for it, and strictly: a malformed
header raises :class:`SipParseError` at that point, which the validator turns into a 400.
"""

from __future__ import annotations

import re
from typing import Any

from .address import NAME_ADDRS, NameAddr, parse_name_addr
from .digest import parse_challenge, parse_credentials
from .errors import SipParseError
from .headers import (
    _NONE,
    Contact,
    ContentType,
    CSeq,
    Headers,
    Via,
    parse_accept,
    parse_contacts,
    parse_content_type,
    parse_cseq,
    parse_route_set,
    parse_small_int,
    parse_tokens,
    parse_via,
    parse_vias,
)
from .syntax import LWS, TOKEN_RE, DecodeMemo, split_commas
from .uri import URIS, Uri

SIP_VERSION = "SIP/2.0"
_VERSION_RE = re.compile(r"SIP/(\d+)\.(\d+)\Z", re.IGNORECASE)
_STATUS_RE = re.compile(r"\d{3}\Z")
_HEADER_NAME = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
DEFAULT_MAX_MESSAGE_SIZE = 65535
# Header names as written -> look-up key. Names repeat across messages, so remembering the
# validated ones saves a regex and two case folds per header line; bounded against floods of
# invented names.
_NAME_KEYS: dict[str, str] = {}
_NAME_KEYS_MAX = 4096  # the largest UDP payload; streams use the same bound

_MISSING: Any = object()  # a view not decoded yet (None is a decoded value: no such header)

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 301: "Moved Permanently",
    302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


class Message:
    """Common part of requests and responses."""

    __slots__ = ("headers", "body", "version", "_views")

    def __init__(self, headers: Headers, body: bytes = b"", version: str = SIP_VERSION) -> None:
        self.headers = headers
        self.body = body
        self.version = version
        self._views: dict[str, Any] = {}

    # -- mutation (keeps the lazily decoded views consistent)
    def set_header(self, name: str, value: str) -> None:
        self.headers.set(name, value)
        self._views.clear()

    def add_header(self, name: str, value: str) -> None:
        self.headers.add(name, value)
        self._views.clear()

    def remove_header(self, name: str) -> None:
        self.headers.remove(name)
        self._views.clear()

    def drop_views(self) -> None:
        """Forget the decoded headers and keep the fields as their text (both come back on
        demand): a message kept only for matching and retransmission then costs about its
        size on the wire, not several times that."""
        self._views.clear()
        self.headers.pack()

    def replace_top_via(self, via: Via) -> None:
        self.headers.replace_first_value("Via", str(via))
        views = self._views
        views.pop("server-key", None)  # (transaction.server_key keeps it here; made of the Via)
        vias = views.get("via")
        if vias:
            views["via"] = [via, *vias[1:]]  # no need to decode them all again

    def _view(self, key: str, decode: Any) -> Any:
        # A look-up rather than try/except KeyError: every view misses once per message,
        # and a raised KeyError costs more than the look-up.
        views = self._views
        value = views.get(key, _MISSING)
        if value is _MISSING:
            value = views[key] = decode(self)
        return value

    def decode_views(self, decoders: tuple[tuple[str, Any], ...]) -> None:
        """Decode the views ``decoders`` names ((key, decoder) pairs, in that order), as
        reading each property would, without a property call per view."""
        views = self._views
        for key, decode in decoders:
            if key not in views:
                views[key] = decode(self)

    def _single(self, name: str) -> str | None:
        return _single(self.headers, Headers.key(name), name)

    def _required(self, name: str) -> str:
        return _required(self.headers, Headers.key(name), name)

    # -- typed views (decoded on first use, then kept in ``_views``; the decoders below are
    # module functions so that a hit costs one dict look-up and no closure)
    @property
    def vias(self) -> list[Via]:
        # The views read on every message (transactions, the node, the pipeline) try the
        # look-up themselves first: as _view, a call fewer.
        value = self._views.get("via", _MISSING)
        return value if value is not _MISSING else self._view("via", _decode_vias)

    @property
    def top_via(self) -> Via:
        vias = self._views.get("via", _MISSING)
        if vias is _MISSING:
            vias = self._view("via", _decode_vias)
        if not vias:
            raise SipParseError("Missing Via header")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        value = self._views.get("from", _MISSING)
        return value if value is not _MISSING else self._view("from", _decode_from)

    @property
    def to(self) -> NameAddr:
        value = self._views.get("to", _MISSING)
        return value if value is not _MISSING else self._view("to", _decode_to)

    @property
    def call_id(self) -> str:
        value = self._views.get("call-id", _MISSING)
        return value if value is not _MISSING else self._view("call-id", _decode_call_id)

    @property
    def cseq(self) -> CSeq:
        value = self._views.get("cseq", _MISSING)
        return value if value is not _MISSING else self._view("cseq", _decode_cseq)

    @property
    def max_forwards(self) -> int | None:
        value = self._views.get("max-forwards", _MISSING)
        return value if value is not _MISSING else self._view("max-forwards", _decode_max_forwards)

    @property
    def expires(self) -> int | None:
        return self._view("expires", _decode_expires)

    @property
    def contacts(self) -> list[Contact]:
        value = self._views.get("contact", _MISSING)
        return value if value is not _MISSING else self._view("contact", _decode_contacts)

    @property
    def routes(self) -> list[NameAddr]:
        return self._view("route", _decode_routes)

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._view("record-route", _decode_record_routes)

    @property
    def content_type(self) -> ContentType | None:
        value = self._views.get("content-type", _MISSING)
        return value if value is not _MISSING else self._view("content-type", _decode_content_type)

    @property
    def accept(self) -> list[str] | None:
        """Accepted media types, or None when there is no Accept header."""
        if not self.headers.by_key("accept"):
            return None
        return self._view("accept", _decode_accept)

    def option_tags(self, name: str) -> list[str]:
        """Values of Require, Proxy-Require, Supported, Unsupported or Allow."""
        key = "tags:" + name.lower()
        value = self._views.get(key, _MISSING)
        if value is _MISSING:
            value = self._views[key] = parse_tokens(self.headers.values(name), name)
        return value

    @property
    def require(self) -> list[str]:
        return self._view("tags:require", _decode_require)  # (option_tags, for every request)

    @property
    def proxy_require(self) -> list[str]:
        return self.option_tags("Proxy-Require")

    @property
    def supported(self) -> list[str]:
        return self.option_tags("Supported")

    @property
    def allow(self) -> list[str]:
        return self.option_tags("Allow")

    @property
    def sdp(self) -> Any:
        """The body parsed as SDP, once per message (the pipeline, the answer and the media
        plan all read the same offer); None without a body. Raises ``SdpError`` if malformed."""
        value = self._views.get("sdp", _MISSING)
        return value if value is not _MISSING else self._view("sdp", _decode_sdp)

    def credentials(self, header: str = "Proxy-Authorization") -> list[Any]:
        """Digest (or other scheme) credentials of Authorization or Proxy-Authorization."""
        keys = _CREDENTIAL_KEYS.get(header)
        if keys is None:
            keys = ("cred:" + header.lower(), Headers.key(header))
        views = self._views
        value = views.get(keys[0], _MISSING)
        if value is _MISSING:
            # (a first INVITE carries neither header: no parse, no list of values to make)
            entries = self.headers.by_key(keys[1])
            value = views[keys[0]] = [parse_credentials(e[2]) for e in entries] if entries else []
        return value

    def challenges(self, header: str = "Proxy-Authenticate") -> list[Any]:
        """Challenges of WWW-Authenticate or Proxy-Authenticate."""
        key = "chal:" + header.lower()
        value = self._views.get(key, _MISSING)
        if value is _MISSING:
            value = self._views[key] = [parse_challenge(v) for v in self.headers.get_all(header)]
        return value

    # -- serialising (Request and Response write their own start line in to_bytes: every
    # message sent passes there; a test holds the two to start_line and Headers.to_text)
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        head = f"{self.start_line()}\r\n{self.headers.to_text()}\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def summary(self) -> str:
        return self.start_line()


class Request(Message):
    __slots__ = ("method", "uri_text")

    def __init__(
        self,
        method: str,
        uri: str | Uri,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        # (Message.__init__ inlined: a call fewer for each of the dozen messages of a call)
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.version = version
        self._views = {}
        self.method = method
        self.uri_text = str(uri)

    @property
    def uri(self) -> Uri:
        views = self._views  # (read by every stage: looked up first, as vias)
        value = views.get("ruri", _MISSING)
        if value is _MISSING:
            value = views["ruri"] = URIS[self.uri_text]  # (parse_uri, without its call)
        return value

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text} {self.version}"

    def to_bytes(self) -> bytes:
        headers = self.headers
        fields = headers._fields  # (packed: already the text, as Headers.to_text returns it)
        text = fields if isinstance(fields, str) else headers.to_text()
        head = f"{self.method} {self.uri_text} {self.version}\r\n{text}\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        self.headers = headers if headers is not None else Headers()  # (as in Request)
        self.body = body
        self.version = version
        self._views = {}
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def to_bytes(self) -> bytes:
        headers = self.headers
        fields = headers._fields  # (as in Request.to_bytes)
        text = fields if isinstance(fields, str) else headers.to_text()
        head = f"{self.version} {self.status} {self.reason}\r\n{text}\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# Request.credentials' view keys and header look-up keys, for the two headers it reads
_CREDENTIAL_KEYS = {name: ("cred:" + name.lower(), Headers.key(name))
                    for name in ("Proxy-Authorization", "Authorization")}


# ---------------------------------------------------------------------------- view decoders


def _single(headers: Headers, key: str, name: str) -> str | None:
    """The value of a header that may appear once (``key`` is its look-up key)."""
    entries = headers.by_key(key)
    if len(entries) > 1:
        raise SipParseError(f"Multiple {name} headers")
    return entries[0][2] if entries else None


def _required(headers: Headers, key: str, name: str) -> str:
    entries = headers.by_key(key)
    if len(entries) != 1:
        raise _once_error(entries, name)
    return entries[0][2]


def _values(headers: Headers, key: str) -> list[str]:
    """List header values split at top-level commas, across every line (Headers.values)."""
    entries = headers.by_key(key)
    if len(entries) == 1:
        return split_commas(entries[0][2])
    out: list[str] = []
    for entry in entries:
        out.extend(split_commas(entry[2]))
    return out


def _decode_vias(m: Message) -> list[Via]:
    return parse_vias(_values(m.headers, "via"))


def _decode_from(m: Message) -> NameAddr:
    return parse_name_addr(_required(m.headers, "from", "From"), "From")


def _decode_to(m: Message) -> NameAddr:
    return parse_name_addr(_required(m.headers, "to", "To"), "To")


def _decode_call_id(m: Message) -> str:
    value = _required(m.headers, "call-id", "Call-ID").strip()
    if not value or " " in value or "\t" in value:
        raise SipParseError("Malformed Call-ID header")
    return value


def _decode_cseq(m: Message) -> CSeq:
    return parse_cseq(_required(m.headers, "cseq", "CSeq"))


def _decode_max_forwards(m: Message) -> int | None:
    value = _single(m.headers, "max-forwards", "Max-Forwards")
    return None if value is None else _MAX_FORWARDS[value]


# "70" on nearly every request: decoded once per distinct text
_MAX_FORWARDS: DecodeMemo = DecodeMemo(lambda text: parse_small_int(text, "Max-Forwards", 255),
                                       limit=256)


def _decode_expires(m: Message) -> int | None:
    value = _single(m.headers, "expires", "Expires")
    return None if value is None else parse_small_int(value, "Expires", 2**32 - 1)


def _decode_contacts(m: Message) -> list[Contact]:
    return parse_contacts(_values(m.headers, "contact"))


def _decode_routes(m: Message) -> list[NameAddr]:
    return parse_route_set(m.headers.values("Route"), "Route")


def _decode_record_routes(m: Message) -> list[NameAddr]:
    return parse_route_set(m.headers.values("Record-Route"), "Record-Route")


def _decode_content_type(m: Message) -> ContentType | None:
    value = _single(m.headers, "content-type", "Content-Type")
    return None if value is None else parse_content_type(value)


def _decode_require(m: Message) -> list[str]:
    return parse_tokens(_values(m.headers, "require"), "Require")


def _decode_accept(m: Message) -> list[str]:
    return parse_accept(m.headers.values("Accept"))


def _decode_sdp(m: Message) -> Any:
    body = m.body
    if not body:
        return None
    if len(body) > _SHARED_SDP_MAX:
        from .sdp import parse_sdp

        return parse_sdp(body)
    return _SHARED_SDP[body]


def _parse_sdp(body: bytes) -> Any:
    from .sdp import parse_sdp

    return parse_sdp(body)


# A parsed SDP is immutable (frozen, its caches are derived from it), so one parse serves
# every message carrying the same body: a phone or SIPp offers the same SDP on every call,
# and a challenged INVITE is sent again with it. Bounded by count and body size.
_SHARED_SDP_MAX = 4096
_SHARED_SDP: DecodeMemo = DecodeMemo(_parse_sdp, limit=256)


# What a UAS decodes of every request before processing it (validate.check_request), in the
# order their defects are reported.
UAS_VIEWS = (
    ("via", _decode_vias), ("from", _decode_from), ("to", _decode_to),
    ("call-id", _decode_call_id), ("cseq", _decode_cseq), ("max-forwards", _decode_max_forwards),
    ("contact", _decode_contacts), ("content-type", _decode_content_type),
    ("expires", _decode_expires),
)


def decode_uas_views(m: Message) -> dict[str, Any]:
    """``m.decode_views(UAS_VIEWS)`` and then Require, as every received request needs them,
    after the check that there is a Via (raising "Missing Via header" first): the same views,
    decoded in the same order with the same errors, but with one look-up in the header
    index per header and no decoder call each (the decoders above, inlined; a test holds
    the two to the same results). Returns the views."""
    views = m._views
    headers = m.headers
    index = headers._index
    if index is None:
        index = headers._build_index()
    get = index.get
    entries = get("via", _NONE)
    if not entries:
        raise SipParseError("Missing Via header")
    if "via" not in views:
        value = entries[0][2].strip(LWS) if len(entries) == 1 else ""
        if value and "," not in value:  # one Via (parse_vias, split_commas: what they give)
            views["via"] = [parse_via(value)]
        else:
            views["via"] = parse_vias(split_commas(entries[0][2]) if len(entries) == 1
                                      else _values(headers, "via"))
    # The headers that must appear once: the one field unpacked from the index (an index
    # entry is never empty), with no look-up or len() call in the usual case.
    for key, name in _NAME_ADDRS:
        if key not in views:
            try:
                (entry,) = index[key]
            except (KeyError, ValueError):
                raise _once_error(get(key, _NONE), name) from None
            views[key] = NAME_ADDRS[(entry[2], name)]  # (parse_name_addr, without its call)
    if "call-id" not in views:
        try:
            (entry,) = index["call-id"]
        except (KeyError, ValueError):
            raise _once_error(get("call-id", _NONE), "Call-ID") from None
        value = entry[2].strip()
        if not value or " " in value or "\t" in value:
            raise SipParseError("Malformed Call-ID header")
        views["call-id"] = value
    if "cseq" not in views:
        try:
            (entry,) = index["cseq"]
        except (KeyError, ValueError):
            raise _once_error(get("cseq", _NONE), "CSeq") from None
        views["cseq"] = parse_cseq(entry[2])
    if "max-forwards" not in views:
        entries = get("max-forwards", _NONE)
        if len(entries) > 1:
            raise SipParseError("Multiple Max-Forwards headers")
        views["max-forwards"] = _MAX_FORWARDS[entries[0][2]] if entries else None
    if "contact" not in views:
        entries = get("contact", _NONE)
        if not entries:  # (an ACK, a BYE)
            views["contact"] = []
        elif len(entries) == 1:
            value = entries[0][2]
            views["contact"] = parse_contacts(split_commas(value) if "," in value
                                              else [value.strip(LWS)])
        else:
            views["contact"] = parse_contacts(_values(headers, "contact"))
    if "content-type" not in views:
        entries = get("content-type", _NONE)
        if len(entries) > 1:
            raise SipParseError("Multiple Content-Type headers")
        views["content-type"] = parse_content_type(entries[0][2]) if entries else None
    if "expires" not in views:
        entries = get("expires", _NONE)
        if len(entries) > 1:
            raise SipParseError("Multiple Expires headers")
        views["expires"] = (parse_small_int(entries[0][2], "Expires", 2**32 - 1) if entries
                            else None)
    if "tags:require" not in views:
        entries = get("require", _NONE)
        if not entries:  # (nearly every request)
            views["tags:require"] = []
        else:
            views["tags:require"] = parse_tokens(split_commas(entries[0][2]), "Require") \
                if len(entries) == 1 else _decode_require(m)
    return views


_NAME_ADDRS = (("from", "From"), ("to", "To"))


def _once_error(entries: list[list[str]], name: str) -> SipParseError:
    """The error of a header that must appear once, for its ``entries`` (not one)."""
    return SipParseError(f"Multiple {name} headers" if entries else f"Missing {name} header")


# ---------------------------------------------------------------------------- parsing


def parse_datagram(data: bytes, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Request | Response:
    """Parse one message from a UDP datagram.

    The header section ends at the first empty line (or, leniently, at the end of the datagram);
    the body is Content-Length octets, or everything up to the end of the datagram when there is
    no Content-Length (RFC 3261 §18.3). Octets after the declared body are discarded.
    """
    if len(data) > max_size:
        raise SipParseError(TOO_LARGE, status=513, partial=_oversized_request(data[:max_size]))
    start = 0
    if data[:2] == b"\r\n":  # (blank lines before the message, rare: no call otherwise)
        while data.startswith(b"\r\n", start):
            start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        head, rest = data[start:], b""
        if head.endswith(b"\r\n"):
            head = head[:-2]
    else:
        head, rest = data[start:end], data[end + 4 :]
    return _parse(head, rest, datagram=True)


# RFC 3261 §21.5.14; a UAS answers it when it can still read the header section (§18.1.1).
TOO_LARGE = "Message Too Large"


def _oversized_request(start: bytes) -> Request | None:
    """The request that is too large, rebuilt from the whole header lines among its first
    octets so that the 513 can be addressed (Via, From, To, Call-ID and CSeq come first in
    practice); None when they are unusable, or the message is a response."""
    end = start.find(b"\r\n\r\n")
    head = start[:end] if end >= 0 else start[: start.rfind(b"\r\n")]
    if not head:
        return None
    try:
        message = _parse(head, b"", datagram=True)
    except SipParseError as err:
        return err.partial if isinstance(err.partial, Request) else None
    return message if isinstance(message, Request) else None


def parse_stream_message(data: bytes) -> Request | Response:
    """Parse one message already cut out of a stream by :class:`StreamFramer`."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise SipParseError("Incomplete header section")
    return _parse(data[:end], data[end + 4 :], datagram=False)


def _parse(head: bytes, rest: bytes, datagram: bool) -> Request | Response:
    if not head:
        raise SipParseError("Empty message")
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    start_line = lines[0]
    fields = _known_fields(lines)
    if fields is None:
        fields = _fields(lines, start_line)
    headers = Headers._from_parsed(*fields)
    if not head.isascii() and (field := _undecodable_field(lines)):
        # The start line and header fields are UTF-8 (RFC 3261 §7.3.1, TEXT-UTF8); other
        # octets make a 400 naming the field before any stage reads it. The 400 copies the
        # fields as received (bytes included), so the sender can still match it.
        raise _framing_error(f"{field} is not valid UTF-8", start_line, headers)
    # The usual body - one Content-Length of at most ten digits, no longer than what is
    # there - taken here; anything else is _frame_body's to read or refuse, which gives
    # the same body for these (both parsers index the fields and strip their values).
    lengths = fields[1].get("content-length", _NONE)
    value = lengths[0][2] if len(lengths) == 1 else ""
    if value.isdigit() and value.isascii() and len(value) <= 10 and int(value) <= len(rest):
        body = rest[: int(value)]
    else:
        body = _frame_body(headers, rest, datagram, start_line)
    # (a request's method rarely begins with S: its start line is not folded to compare)
    if start_line[:1] in "Ss" and start_line[:4].upper() == "SIP/":
        return _parse_status_line(start_line, headers, body)
    return _parse_request_line(start_line, headers, body)


def _known_fields(lines: list[str]) -> tuple[list[list[str]], dict[str, list[list[str]]]] | None:
    """The header fields when every line is "Name:value" with a name seen before (valid,
    so neither a folded line nor a name followed by blanks: see _NAME_KEYS); None sends
    the message to :func:`_fields`, which gives the same fields for such lines."""
    entries: list[list[str]] = []
    index: dict[str, list[list[str]]] = {}
    keys = _NAME_KEYS
    # (subscripts and `in` rather than get(): two calls fewer for each line of a message)
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        try:
            key = keys[name]
        except KeyError:
            return None
        entry = [key, name, value.strip(" \t")]
        entries.append(entry)
        if key in index:
            index[key].append(entry)
        else:
            index[key] = [entry]
    return entries, index


def _fields(lines: list[str],
            start_line: str) -> tuple[list[list[str]], dict[str, list[list[str]]]]:
    """The header fields of ``lines`` (after the start line) and their look-up index, built
    along (every message is looked up; one pass is cheaper than two). A folded line changes
    its entry in place, seen by both. Raises for a malformed line."""
    entries: list[list[str]] = []
    index: dict[str, list[list[str]]] = {}
    keys = _NAME_KEYS
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not entries:
                raise SipParseError("Continuation line before the first header")
            entries[-1][2] = (entries[-1][2] + " " + line.strip(" \t")).strip(" \t")
            continue
        colon = line.find(":")
        if colon <= 0:
            raise _framing_error("Malformed header line", start_line, Headers._from_parsed(entries))
        name = line[:colon]
        key = keys.get(name)
        if key is None:
            name = name.rstrip(" \t")
            if not _HEADER_NAME.match(name):
                raise _framing_error(
                    f"Malformed header name {name[:40]!r}", start_line, Headers._from_parsed(entries)
                )
            key = Headers.key(name)
            if len(keys) < _NAME_KEYS_MAX and name == line[:colon]:
                keys[name] = key
        entry = [key, name, line[colon + 1 :].strip(" \t")]
        entries.append(entry)
        same = index.get(key)
        if same is None:
            index[key] = [entry]
        else:
            same.append(entry)
    return entries, index


# surrogateescape decodes each octet that is not UTF-8 to U+DC80..U+DCFF.
_ESCAPED_LOW, _ESCAPED_HIGH = chr(0xDC80), chr(0xDCFF)


def _undecodable_field(lines: list[str]) -> str:
    """The first line (start line or header name) carrying octets that are not UTF-8."""
    for index, line in enumerate(lines):
        if any(_ESCAPED_LOW <= ch <= _ESCAPED_HIGH for ch in line):
            if index == 0:
                return "Start line"
            name = line.partition(":")[0].strip()[:40]
            return f"Header {name.encode('ascii', 'replace').decode('ascii')}"
    return ""


def _frame_body(headers: Headers, rest: bytes, datagram: bool, start_line: str) -> bytes:
    """The body of a message parsed from ``headers`` (both parsers index the fields and
    strip their values) and ``rest``, the octets after the header section."""
    lengths = [entry[2] for entry in headers.by_key("content-length")]
    if not lengths:
        return rest if datagram else b""
    if len(lengths) > 1 and len({v.strip() for v in lengths}) > 1:
        raise _framing_error("Conflicting Content-Length headers", start_line, headers)
    if len(lengths) > 1:
        raise _framing_error("Multiple Content-Length headers", start_line, headers)
    value = lengths[0].strip(" \t")
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise _framing_error("Malformed Content-Length", start_line, headers)
    length = int(value)
    if length > len(rest):
        raise _framing_error("Content-Length larger than the message body", start_line, headers)
    return rest[:length]


def _framing_error(reason: str, start_line: str, headers: Headers) -> SipParseError:
    return SipParseError(reason, partial=_bare_request(start_line, headers))


def _bare_request(start_line: str, headers: Headers) -> Request | None:
    """A request carrying only what is needed to answer it, when the start line allows."""
    if start_line[:4].upper() == "SIP/":
        return None
    method = start_line.split(" ", 1)[0]
    return Request(method if TOKEN_RE.fullmatch(method) else "UNKNOWN", "sip:invalid", headers)


def _parse_request_line(line: str, headers: Headers, body: bytes) -> Request:
    parts = line.split(" ")
    if len(parts) != 3 or "" in parts:
        raise _framing_error("Malformed Request-Line", line, headers)
    method, uri_text, version = parts
    if method not in _KNOWN_METHODS and not TOKEN_RE.fullmatch(method):
        raise _framing_error("Malformed method in Request-Line", line, headers)
    if version == SIP_VERSION:
        return Request(method, uri_text, headers, body, SIP_VERSION)
    if not _VERSION_RE.match(version):
        raise _framing_error("Malformed SIP version in Request-Line", line, headers)
    return Request(method, uri_text, headers, body, version.upper())


# Tokens for certain (TOKEN_RE): no match needed for the methods of nearly every request.
_KNOWN_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO",
                            "PRACK", "UPDATE", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER",
                            "PUBLISH"})


def _parse_status_line(line: str, headers: Headers, body: bytes) -> Response:
    parts = line.split(" ", 2)
    if len(parts) < 3:
        # RFC 4475 §3.1.1.13 needs the SP after the code; be lenient about its absence too.
        parts.append("")
    version, code, reason = parts
    if not _VERSION_RE.match(version):
        raise SipParseError("Malformed SIP version in Status-Line")
    if not _STATUS_RE.match(code) or not 100 <= int(code) <= 699:
        raise SipParseError("Malformed status code in Status-Line")
    return Response(int(code), reason, headers, body, version.upper())


class StreamFramer:
    """Cuts whole messages out of a TCP/TLS byte stream (sans-IO).

    ``feed`` bytes as they arrive, then take messages with ``next_message`` until it returns
    None. Content-Length frames the body; missing means 0 on a stream. Errors that lose the
    framing raise :class:`SipParseError`: the connection cannot be resynchronised and should
    be closed. Blank lines between messages (RFC 5626 keep-alives) are skipped and counted.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self.max_message_size = max_message_size
        self.keepalives = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_message(self) -> bytes | None:
        buf = self._buffer
        skipped = 0
        while buf.startswith(b"\r\n", skipped):
            skipped += 2
        if skipped:
            self.keepalives += 1 if skipped >= 4 else 0
            del buf[:skipped]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.max_message_size:
                raise SipParseError(TOO_LARGE, status=513,
                                    partial=_oversized_request(bytes(buf[:self.max_message_size])))
            return None
        length = _stream_content_length(bytes(buf[:end]))
        total = end + 4 + length
        if total > self.max_message_size:
            raise SipParseError(TOO_LARGE, status=513,
                                partial=_oversized_request(bytes(buf[:end + 2])))
        if len(buf) < total:
            return None
        message = bytes(buf[:total])
        del buf[:total]
        return message


_CL_LINE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def _stream_content_length(head: bytes) -> int:
    values = {v.strip() for v in _CL_LINE.findall(head)}
    if not values:
        return 0
    if len(values) > 1:
        raise SipParseError("Conflicting Content-Length headers")
    (value,) = values
    if not value.isdigit() or len(value) > 10:
        raise SipParseError("Malformed Content-Length")
    return int(value)


# ---------------------------------------------------------------------------- building


class _Copied:
    """What every response to a request copies of its header fields (RFC 3261 §8.2.6.2):
    the Via and From fields, the To values, the Call-ID and CSeq fields, in this order, and
    their text (kept on the request's Headers: see make_response)."""

    __slots__ = ("before", "tos", "after", "head", "to_text", "tail", "tagless", "clean")

    def __init__(self, headers: Headers) -> None:
        index = headers._index
        if index is None:
            index = headers._build_index()
        # (loops adding to strings: in Python 3.11 a comprehension is a call of its own)
        before, head = _gathered(index, (("via", "Via"), ("from", "From")))
        tos: list[str] = []
        to_text = ""
        tagless = False  # a To without a tag, to be tagged
        for entry in index.get("to", _NONE):
            tos.append(entry[2])
            to_text += f"To: {entry[2]}\r\n"
            if not _has_tag(entry[2]):
                tagless = True
        after, tail = _gathered(index, (("call-id", "Call-ID"), ("cseq", "CSeq")))
        self.before, self.tos, self.after = before, tos, after
        self.head, self.to_text, self.tail, self.tagless = head, to_text, tail, tagless
        text = head + to_text + tail
        # each line holds no CR or LF but its end (see make_response)
        self.clean = text.count("\n") == text.count("\r") == len(before) + len(tos) + len(after)


def _gathered(index: dict[str, list[list[str]]], keys: tuple[tuple[str, str], ...]
              ) -> tuple[list[tuple[str, str]], str]:
    """The fields of ``keys`` ((key, name) pairs) in that order, named so, and their text."""
    fields: list[tuple[str, str]] = []
    text = ""
    for key, name in keys:
        for entry in index.get(key, _NONE):
            fields.append((name, entry[2]))
            text += f"{name}: {entry[2]}\r\n"
    return fields, text


def _fields_text(fields: list[tuple[str, str]]) -> str:
    return "".join([f"{name}: {value}\r\n" for name, value in fields])


def _has_tag(to: str) -> bool:
    return ";tag=" in to.replace(" ", "")


def _tagged_tos(tos: list[str], to_tag: str) -> list[str]:
    """The To values of a response with a To tag: a To without one gets ``to_tag``."""
    return [value if _has_tag(value) else f"{value};tag={to_tag}" for value in tos]


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied.

    Values are copied as raw text, so this works even for a request whose headers do not
    decode (a 400 to a malformed request still reaches its sender). A To tag is added when
    given and the To has none.
    """
    # The header section is written as its text straight away, packed (Headers.pack): a
    # response is serialised to be sent and then, most of them, kept only to be sent again,
    # so the fields as lists and their look-up index would be built for nothing; a use that
    # needs them unpacks the text (exactly). What the node and the transaction layer read
    # of a response (its Call-ID, CSeq, tags) are the views shared below.
    copied = request.headers
    parts = copied._copied
    if parts is None:
        parts = copied._copied = _Copied(copied)
    tos, to_text, tagged = parts.tos, parts.to_text, False
    packable = parts.clean
    if to_tag and status != 100 and parts.tagless:
        tos = _tagged_tos(tos, to_tag)
        to_text = _fields_text([("To", value) for value in tos])
        tagged = True
        packable = packable and "\r" not in to_tag and "\n" not in to_tag
    text = parts.head + to_text + parts.tail
    for name, value in extra:
        text += f"{name}: {value}\r\n"
        # The text splits back into the same fields when each line holds no other CR or
        # LF and no name holds ": " (the copied ones are the names above; an extra one
        # could be any).
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ": " in name:
            packable = False
    text += f"Content-Length: {len(body)}\r\n"
    if packable:
        headers = Headers.packed(text)
    else:
        headers = Headers([*parts.before, *[("To", value) for value in tos], *parts.after,
                           *extra, ("Content-Length", str(len(body)))])
    response = Response(status, reason, headers, body)
    # The copied headers decode exactly as the request's did: share what is already decoded
    # (the transaction layer and the trace read the response's To tag, Call-ID and CSeq).
    decoded = request._views
    views = response._views
    try:  # (all four at once for a request that was validated, as nearly all are)
        views["via"], views["from"], views["call-id"], views["cseq"] = (
            decoded["via"], decoded["from"], decoded["call-id"], decoded["cseq"])
    except KeyError:
        for key in ("via", "from", "call-id", "cseq"):
            shared = decoded.get(key, _MISSING)  # (not `value`: mypyc types that one str)
            if shared is not _MISSING:
                views[key] = shared
    to = decoded.get("to")
    if to is not None:
        views["to"] = NameAddr(to.uri, to.display_name,
                               (*to.params, ("tag", to_tag))) if tagged else to
    return response


def make_request(
    method: str,
    uri: str | Uri,
    headers: list[tuple[str, str]],
    body: bytes = b"",
) -> Request:
    """A request with the given headers and a correct Content-Length."""
    hdrs = Headers([h for h in headers if Headers.key(h[0]) != "content-length"])
    hdrs.add("Content-Length", str(len(body)))
    return Request(method, uri, hdrs, body)
