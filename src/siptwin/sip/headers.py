"""The ordered header multimap and the typed views decoded from it (RFC 3261 §20)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .address import NameAddr, parse_name_addr
from .errors import SipParseError
from .frozen import quicken
from .syntax import (
    LWS,
    DecodeMemo,
    Params,
    has_param,
    param_lookup,
    params_text,
    parse_params,
    read_quoted,
    split_commas,
)

COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "c": "Content-Type",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires",
    "From", "In-Reply-To", "Max-Forwards", "Min-Expires", "MIME-Version", "Organization",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route",
    "Reply-To", "Require", "Retry-After", "Route", "Server", "Subject", "Supported", "Timestamp",
    "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Event",
    "Allow-Events", "Refer-To", "Referred-By", "Session-Expires", "Identity", "RSeq", "RAck",
    "P-Asserted-Identity", "User-to-User", "Reason", "Path",
]

# lower-case spelling (long or compact) -> canonical long name
CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
CANONICAL.update(COMPACT_FORMS)

# Headers whose values are comma-separated lists (§7.3.1). Others are kept whole: an unknown
# header such as "X: ;;,,;;,;" is one opaque value.
LIST_HEADERS = frozenset(
    {
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Content-Encoding", "Allow-Events", "Path", "Warning", "In-Reply-To",
    }
)
SINGLE_VALUED = ("Call-ID", "From", "To", "CSeq", "Max-Forwards", "Content-Length", "Content-Type")


_KEY_MEMO: dict[str, str] = {}
_NONE: list[list[str]] = []  # the answer for an absent header; never mutated


def canonical_name(name: str) -> str:
    """The long, conventionally capitalised name; unknown names are returned unchanged."""
    return CANONICAL.get(name.lower(), name)


class Headers:
    """Ordered multimap of header fields.

    Each entry keeps the field name as written and the unfolded value, so serialising gives back
    what was received (modulo folding). Look-ups are case-insensitive and compact-form aware.
    """

    __slots__ = ("_fields", "_index", "_text", "_copied")

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        # entries: [key (canonical lower-case), name as written, value]; or, once packed
        # (see pack), the serialised header section as one string.
        self._fields: list[list[str]] | str = []
        # key -> its entries in order, built on the first look-up: a message is parsed once
        # and then asked for the same dozen headers many times.
        self._index: dict[str, list[list[str]]] | None = None
        # The serialised entries, kept from the first to_text() until a change: a response
        # is serialised to be sent and then packed, with the same text, to be kept.
        self._text: str | None = None
        # What a response copies of these fields (message.make_response), kept from the
        # first response to the request until a change: a request gets two or three.
        self._copied: Any = None
        for name, value in fields or ():
            self.add(name, value)

    @classmethod
    def _from_parsed(cls, entries: list[list[str]],
                     index: dict[str, list[list[str]]] | None = None) -> Headers:
        """Headers over ``entries`` as kept (see __init__); ``index``, when the caller built
        it along with them, must hold exactly those entries by key, in order."""
        h = cls()  # mypyc: cls.__new__(cls) crashes the compiler (KeyError '__new__')
        h._fields = entries
        h._index = index
        return h

    @staticmethod
    def key(name: str) -> str:
        key = _KEY_MEMO.get(name)
        if key is None:
            lname = name.lower()
            canon = CANONICAL.get(lname)
            key = canon.lower() if canon is not None else lname
            if len(_KEY_MEMO) < 4096:
                _KEY_MEMO[name] = key
        return key

    # -- packing: a message a transaction keeps 32 s for matching and retransmission only
    def pack(self) -> bool:
        """Keep the fields as their serialised text (one string instead of a list per
        field); any later use unpacks them again, exactly. False when they stay a list."""
        fields = self._fields
        if isinstance(fields, str):
            return True
        text = self.to_text()
        # Each field ends with the only CR and LF of its line, or the text would not split
        # back into the same fields (a value, or a name added by hand, holding one).
        if text.count("\n") != len(fields) or text.count("\r") != len(fields):
            return False
        self._fields = text
        self._index = None
        self._text = self._copied = None  # (the packed fields are the text)
        return True

    @classmethod
    def packed(cls, text: str) -> Headers:
        """Headers from the text of packed ones (``to_text()`` after ``pack()`` was True)."""
        h = cls()
        h._fields = text
        return h

    def _list(self) -> list[list[str]]:
        fields = self._fields
        if isinstance(fields, str):
            unpacked: list[list[str]] = []
            for line in fields.split("\r\n")[:-1]:
                name, _, value = line.partition(": ")  # a name never contains ':'
                unpacked.append([self.key(name), name, value])
            self._fields = fields = unpacked
        return fields

    def _build_index(self) -> dict[str, list[list[str]]]:
        index: dict[str, list[list[str]]] = {}
        for entry in self._list():
            found = index.get(entry[0])
            if found is None:
                index[entry[0]] = [entry]
            else:
                found.append(entry)
        self._index = index
        return index

    def by_key(self, key: str) -> list[list[str]]:
        """The entries ([key, name, value], never to be changed by the caller) of the header
        whose look-up key is ``key`` (what :meth:`key` gives: "via", "call-id"); the SIP core
        passes the key it knows instead of a name to fold."""
        index = self._index
        if index is None:
            index = self._build_index()
        return index.get(key, _NONE)

    def _entries(self, name: str) -> list[list[str]]:
        index = self._index
        if index is None:
            index = self._build_index()
        key = _KEY_MEMO.get(name)
        return index.get(key if key is not None else self.key(name), _NONE)

    def add(self, name: str, value: str) -> None:
        self._text = self._copied = None
        entry = [self.key(name), name, value]
        self._list().append(entry)
        if self._index is not None:
            self._index.setdefault(entry[0], []).append(entry)

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` by one; keeps the position of the first."""
        key = self.key(name)
        self._index = self._text = self._copied = None
        fields = self._list()
        for i, entry in enumerate(fields):
            if entry[0] == key:
                fields[i] = [key, name, value]
                self._fields = [e for j, e in enumerate(fields) if j <= i or e[0] != key]
                return
        fields.append([key, name, value])

    def remove(self, name: str) -> None:
        key = self.key(name)
        self._index = self._text = self._copied = None
        self._fields = [e for e in self._list() if e[0] != key]

    def replace_first_value(self, name: str, value: str) -> None:
        """Replace the first comma-separated value of the first ``name`` field (a top Via)."""
        entries = self._entries(name)
        if not entries:
            raise KeyError(name)
        entry = entries[0]  # the same list object as in _fields: both see the change
        self._text = self._copied = None
        if "," not in entry[2]:  # one value (split_commas and the join: the new value alone)
            entry[2] = value
            return
        values = split_commas(entry[2])
        values[0] = value
        entry[2] = ", ".join(values)

    def get(self, name: str) -> str | None:
        """Value of the first field called ``name``."""
        entries = self._entries(name)
        return entries[0][2] if entries else None

    def get_all(self, name: str) -> list[str]:
        """Values of every field called ``name``, one per header line."""
        return [e[2] for e in self._entries(name)]

    def count(self, name: str) -> int:
        return len(self._entries(name))

    def values(self, name: str) -> list[str]:
        """List header values split at top-level commas, across every line."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_commas(value))
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((e[1], e[2]) for e in self._list())

    def __len__(self) -> int:
        return len(self._list())

    def copy(self) -> Headers:
        return Headers._from_parsed([list(e) for e in self._list()])

    def to_text(self) -> str:
        fields = self._fields
        if isinstance(fields, str):
            return fields  # packed: already the text
        text = self._text
        if text is None:  # (a list joins faster than a generator)
            text = self._text = "".join([f"{e[1]}: {e[2]}\r\n" for e in fields])
        return text


# ---------------------------------------------------------------------------- typed views

_VIA_PROTOCOL = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+([^; \t]+)"
)
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class Via:
    protocol: str  # "SIP/2.0"
    transport: str  # upper-case: UDP, TCP, TLS, SCTP, WS, or an extension token
    host: str
    port: int | None
    params: Params

    @property
    def branch(self) -> str | None:
        # param_lookup(self.params, "branch"), inlined: every transaction look-up reads it
        # (tests/sip/test_call_path_shortcuts.py holds the two together)
        for k, v in self.params:
            if k == "branch" or k.lower() == "branch":
                return read_quoted(v, 0)[0] if v is not None and v[:1] == '"' else v
        return None

    @property
    def received(self) -> str | None:
        return param_lookup(self.params, "received")

    @property
    def rport(self) -> int | None:
        value = param_lookup(self.params, "rport")
        return int(value) if value and value.isdigit() else None

    @property
    def wants_rport(self) -> bool:
        return has_param(self.params, "rport")

    @property
    def maddr(self) -> str | None:
        return param_lookup(self.params, "maddr")

    @property
    def is_rfc3261(self) -> bool:
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **updates: str | None) -> Via:
        """Set (or with value None add valueless) parameters, replacing existing ones."""
        kept = [(k, v) for k, v in self.params if k.lower() not in updates]
        kept.extend(updates.items())
        return Via(self.protocol, self.transport, self.host, self.port, tuple(kept))

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{params_text(self.params)}"


# The usual Via - "SIP/2.0/UDP host[:port];a=b;c", no whitespace or quotes to undo - in one
# match; anything else takes the general path, which gives the same Via for these.
_PLAIN_VIA = re.compile(
    r"SIP/2\.0/([A-Z]+) ([A-Za-z0-9.\-]+)(?::(\d{1,5}))?"
    r"((?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*)\Z"
)


def parse_via(text: str) -> Via:
    plain = _PLAIN_VIA.match(text)
    if plain is not None:
        transport, host, port_text, rest = plain.groups()
        port = None if port_text is None else int(port_text)
        if port is None or port <= 65535:
            # The match vouches for ";name[=value]" pieces holding no other ';' or '=': a
            # split reads them as parse_params would.
            # (the branch checked during the split: a plain value holds no quotes to read)
            params: Params = ()
            if rest:
                pieces: list[tuple[str, str | None]] = []
                branch: str | None = None
                for piece in rest[1:].split(";"):
                    name, equals, value = piece.partition("=")
                    pieces.append((name, value if equals else None))
                    if branch is None and (name == "branch" or name.lower() == "branch"):
                        branch = value
                        if not value or value == MAGIC_COOKIE:  # (_check_branch's cases)
                            _check_branch(value)
                params = tuple(pieces)
            return Via("SIP/2.0", transport, host, port, params)
    return _parse_via(text)


def _parse_via(text: str) -> Via:
    """Any Via value (RFC 3261 §20.42 with LWS and quoted parameters): what parse_via gives
    for those outside the plain form."""
    m = _VIA_PROTOCOL.match(text.strip(LWS))
    if m is None:
        raise SipParseError("Malformed Via header")
    name, version, transport, sent_by = m.groups()
    if name.upper() != "SIP":
        raise SipParseError("Via protocol is not SIP")
    rest = text.strip(LWS)[m.end() :]
    # sent-by may carry ":port" separated by LWS in theory; accept "host : port" is rare, skip.
    host, port = _split_sent_by(sent_by)
    params = parse_params(rest, "Via")
    return _checked_branch(Via(f"{name.upper()}/{version}", transport.upper(), host, port, params))


def _checked_branch(via: Via) -> Via:
    for name, value in via.params:  # the first branch parameter is the one that counts
        if name.lower() == "branch":
            _check_branch(read_quoted(value, 0)[0] if value is not None and value[:1] == '"'
                          else value)
            break
    return via


def _check_branch(branch: str | None) -> None:
    """RFC 3261 §8.1.1.7: a branch has a value, and more than the magic cookie alone."""
    if not branch:
        raise SipParseError("Via branch without a value")
    if branch == MAGIC_COOKIE:
        raise SipParseError("Via branch is only the magic cookie")


def _split_sent_by(sent_by: str) -> tuple[str, int | None]:
    if sent_by.startswith("["):
        end = sent_by.find("]")
        if end < 0:
            raise SipParseError("Malformed IPv6 address in Via")
        host, tail = sent_by[: end + 1], sent_by[end + 1 :]
    else:
        host, colon, port_text = sent_by.partition(":")
        tail = ":" + port_text if colon else ""
    if not host:
        raise SipParseError("Via without a host")
    port = None
    if tail:
        port_text = tail[1:]
        if not tail.startswith(":") or not port_text.isdigit() or int(port_text) > 65535:
            raise SipParseError("Malformed port in Via")
        port = int(port_text)
    return host, port


def parse_vias(values: list[str]) -> list[Via]:
    vias = []
    for value in values:
        if not value:
            raise SipParseError("Empty Via value")
        vias.append(parse_via(value))
    return vias


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


_CSEQ = re.compile(r"[ \t]*(\d+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*\Z")
CSEQ_MAX = 2**31 - 1  # §8.1.1.5: the sequence number MUST be less than 2**31


def parse_cseq(text: str) -> CSeq:
    return _CSEQS[text]  # "1 INVITE", "2 ACK": the same few texts on every call


def _parse_cseq(text: str) -> CSeq:
    m = _CSEQ.match(text)
    if m is None:
        raise SipParseError("Malformed CSeq header")
    number = int(m.group(1)) if len(m.group(1)) <= 11 else CSEQ_MAX + 1
    if number > CSEQ_MAX:
        raise SipParseError("CSeq number out of range")
    return CSeq(number, m.group(2))


_CSEQS: DecodeMemo = DecodeMemo(_parse_cseq)


def parse_small_int(text: str, what: str, maximum: int) -> int:
    """Decimal integer header (Max-Forwards, Expires, ...) bounded by ``maximum``."""
    digits = text.strip(LWS)
    if not digits.isdigit() or not digits.isascii():
        raise SipParseError(f"Malformed {what} header")
    if len(digits.lstrip("0")) > len(str(maximum)) or int(digits) > maximum:
        raise SipParseError(f"{what} value out of range")
    return int(digits)


@dataclass(frozen=True, slots=True)
class Contact:
    """One Contact value; ``star`` is the "Contact: *" of a REGISTER that removes bindings."""

    address: NameAddr | None
    star: bool = False

    @property
    def expires(self) -> int | None:
        if self.address is None:
            return None
        value = self.address.param("expires")
        if value is None:
            return None
        if not value.isdigit():
            raise SipParseError("Malformed Contact expires parameter")
        return int(value) if len(value) <= 10 else 2**32


def parse_contacts(values: list[str]) -> list[Contact]:
    if len(values) == 1 and values[0].strip(LWS) == "*":
        return [Contact(None, star=True)]
    out = []
    for value in values:
        if value.strip(LWS) == "*":
            raise SipParseError("Contact '*' mixed with other contacts")
        out.append(_CONTACTS[value])
    return out


# A Contact is immutable, and a caller sends the same one on every request of every call:
# decoded once per distinct text (see DecodeMemo; parse_name_addr's errors propagate).
_CONTACTS: DecodeMemo = DecodeMemo(lambda value: Contact(parse_name_addr(value, "Contact")),
                                   limit=256)


def parse_tokens(values: list[str], what: str) -> list[str]:
    """Option-tag and method lists (Require, Supported, Allow, ...)."""
    out = []
    for value in values:
        word = value.strip(LWS)
        if not word:
            continue
        if not re.fullmatch(r"[A-Za-z0-9\-.!%*_+`'~]+", word):
            raise SipParseError(f"Malformed {what} header")
        out.append(word)
    return out


@dataclass(frozen=True, slots=True)
class ContentType:
    type: str  # lower-case "type/subtype"
    params: Params

    def __str__(self) -> str:
        return self.type + params_text(self.params)


_MEDIA_TYPE = re.compile(r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)")


def parse_content_type(text: str) -> ContentType:
    return _CONTENT_TYPES[text]  # decoded once per distinct text (see DecodeMemo)


def _parse_content_type(text: str) -> ContentType:
    m = _MEDIA_TYPE.match(text)
    if m is None:
        raise SipParseError("Malformed Content-Type header")
    return ContentType(f"{m.group(1)}/{m.group(2)}".lower(), parse_params(text[m.end() :], "Content-Type"))


_CONTENT_TYPES: DecodeMemo = DecodeMemo(_parse_content_type, limit=256)


def parse_accept(values: list[str]) -> list[str]:
    """Media ranges of Accept, lower-case, parameters dropped."""
    out = []
    for value in values:
        if value:
            out.append(parse_content_type(value).type)
    return out


def parse_route_set(values: list[str], what: str) -> list[NameAddr]:
    out = []
    for value in values:
        if not value:
            raise SipParseError(f"Empty {what} value")
        out.append(parse_name_addr(value, what))
    return out


for _cls in (Via, CSeq, Contact, ContentType):
    quicken(_cls)


__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "Contact",
    "ContentType",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
    "parse_accept",
    "parse_contacts",
    "parse_content_type",
    "parse_cseq",
    "parse_route_set",
    "parse_small_int",
    "parse_tokens",
    "parse_via",
    "parse_vias",
]
