"""SDP (RFC 4566) parsing and offer/answer (RFC 3264) for G.711 audio and telephone-event,
with SDES keys (RFC 4568 ``a=crypto``) for secure domains.

Sans-IO: bytes in, frozen dataclasses out. Twilio's SIP interface speaks PCMU and PCMA only,
with RFC 4733 telephone-event for DTMF (spec §4.5), so the answerer needs no more than that;
everything else an offer carries is kept so it can be serialised again and diagnosed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from .frozen import quicken

__all__ = [
    "Answer",
    "Attribute",
    "Codec",
    "Connection",
    "CryptoAttribute",
    "MediaDescription",
    "NoCommonCodec",
    "OfferSummary",
    "Origin",
    "SdpError",
    "SessionDescription",
    "Timing",
    "answer_offer",
    "choose_crypto",
    "parse_crypto",
    "make_offer",
    "parse_sdp",
    "summarize_offer",
]


class SdpError(ValueError):
    """A session description that does not follow RFC 4566; the message names the defect."""


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRRORED_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
# RFC 3551 static payload types a G.711-centred twin meets in practice; an offer may list
# these without a=rtpmap.
_STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    13: ("CN", 8000),
    18: ("G729", 8000),
}
_STATIC_BY_NAME = {name: pt for pt, (name, _) in _STATIC_PAYLOAD_TYPES.items()}
# Written out rather than ipaddress's is_private, which also counts the documentation
# ranges (192.0.2.0/24, 203.0.113.0/24...) that tests use as public addresses.
_NON_ROUTABLE_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
        "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10",
    )
)  # fmt: skip
TELEPHONE_EVENT = "telephone-event"
DEFAULT_TELEPHONE_EVENT_PT = 101
DEFAULT_EVENTS = "0-16"

_RTPMAP = re.compile(
    r"(?P<pt>[0-9]{1,3}) (?P<name>[^\s/]+)/(?P<rate>[0-9]+)(?:/(?P<channels>[0-9]+))?"
)
_FMTP = re.compile(r"(?P<pt>[0-9]{1,3}) (?P<params>\S.*)")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+")
_SESSION_TYPES = frozenset("vosiuepcbtrzkam")
_MEDIA_TYPES = frozenset("icbka")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    username: str
    session_id: str  # text, not int: some stacks use ids longer than 64 bits
    session_version: str
    net_type: str
    addr_type: str
    address: str

    def to_value(self) -> str:
        return " ".join(
            (self.username, self.session_id, self.session_version, self.net_type,
             self.addr_type, self.address)
        )  # fmt: skip


@dataclass(frozen=True)
class Connection:
    net_type: str
    addr_type: str
    address: str  # may carry /ttl or /count for multicast

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    def to_value(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}"


@dataclass(frozen=True)
class Timing:
    start: int
    stop: int
    repeats: tuple[str, ...] = ()  # r= lines belonging to this t=


@dataclass(frozen=True)
class Attribute:
    name: str
    value: str | None = None  # None for property attributes such as a=sendrecv

    def to_value(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class Codec:
    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None

    @property
    def rtpmap(self) -> str:
        suffix = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{suffix}"

    def is_(self, name: str, clock_rate: int = 8000) -> bool:
        """Same encoding (case-insensitive), clock rate, and mono."""
        return (
            self.name.upper() == name.upper()
            and self.clock_rate == clock_rate
            and self.channels in (None, 1)
        )


@dataclass(frozen=True)
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connections: tuple[Connection, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    other_fields: tuple[tuple[str, str], ...] = ()  # i=, b=, k= as (letter, value)
    # mypyc: no instance __dict__ on a native class, so the memo is a declared field
    _codecs: tuple[Codec, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper().startswith("RTP/")

    @property
    def is_srtp(self) -> bool:
        """Secure profile (RTP/SAVP, RTP/SAVPF) or SDES keys offered on any profile."""
        return "SAVP" in self.proto.upper() or bool(self.attribute_values("crypto"))

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, if any."""
        return next((a.name for a in self.attributes if a.name in DIRECTIONS), None)

    def attribute_values(self, name: str) -> tuple[str, ...]:
        return tuple(a.value or "" for a in self.attributes if a.name == name)

    def codecs(self) -> tuple[Codec, ...]:
        """The RTP payload formats in offer order, named by a=rtpmap or the static table."""
        # Decoded once: the pipeline, the answer and the media plan all ask. The description
        # is frozen, so the result is set with object.__setattr__; getattr because a
        # mypyc-compiled class leaves an init=False field unset despite its default.
        cached = getattr(self, "_codecs", None)
        if cached is None:
            cached = self._decode_codecs()
            object.__setattr__(self, "_codecs", cached)
        return cached

    def _decode_codecs(self) -> tuple[Codec, ...]:
        if not self.is_rtp:
            return ()
        rtpmaps = {
            int(m["pt"]): m for m in map(_RTPMAP.fullmatch, self.attribute_values("rtpmap")) if m
        }
        fmtps = {
            int(m["pt"]): m["params"]
            for m in map(_FMTP.fullmatch, self.attribute_values("fmtp"))
            if m
        }
        found: list[Codec] = []
        for text in self.formats:
            pt = int(text)
            if pt in rtpmaps:
                match = rtpmaps[pt]
                channels = int(match["channels"]) if match["channels"] else None
                found.append(Codec(pt, match["name"], int(match["rate"]), channels, fmtps.get(pt)))
            elif pt in _STATIC_PAYLOAD_TYPES:
                name, rate = _STATIC_PAYLOAD_TYPES[pt]
                found.append(Codec(pt, name, rate, None, fmtps.get(pt)))
        return tuple(found)

    def to_lines(self) -> Iterator[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        yield f"m={' '.join((self.media, port, self.proto, *self.formats))}"
        yield from _field_lines(self.other_fields, "i")
        for connection in self.connections:
            yield f"c={connection.to_value()}"
        yield from _field_lines(self.other_fields, "bk")
        for attribute in self.attributes:
            yield f"a={attribute.to_value()}"


@dataclass(frozen=True)
class SessionDescription:
    origin: Origin
    session_name: str
    timings: tuple[Timing, ...] = (Timing(0, 0),)
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    other_fields: tuple[tuple[str, str], ...] = ()  # i=, u=, e=, p=, b=, z=, k=
    version: int = 0
    # mypyc: no instance __dict__ on a native class, so the memo is a declared field
    _summary: OfferSummary | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # The serialised form, once written (an answer made from a template comes with it).
    _bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def session_direction(self) -> str | None:
        return next((a.name for a in self.attributes if a.name in DIRECTIONS), None)

    def direction_of(self, media: MediaDescription) -> str:
        """Media-level direction, else session-level, else sendrecv (RFC 4566 §6)."""
        return media.direction or self.session_direction or "sendrecv"

    def connection_of(self, media: MediaDescription) -> Connection | None:
        return media.connections[0] if media.connections else self.connection

    def to_bytes(self) -> bytes:
        cached: bytes | None = getattr(self, "_bytes", None)
        if cached is None:
            cached = "".join(line + "\r\n" for line in self._lines()).encode("utf-8")
            object.__setattr__(self, "_bytes", cached)
        return cached

    def _lines(self) -> Iterator[str]:
        yield f"v={self.version}"
        yield f"o={self.origin.to_value()}"
        yield f"s={self.session_name}"
        yield from _field_lines(self.other_fields, "iuep")
        if self.connection is not None:
            yield f"c={self.connection.to_value()}"
        yield from _field_lines(self.other_fields, "b")
        for timing in self.timings:
            yield f"t={timing.start} {timing.stop}"
            yield from (f"r={repeat}" for repeat in timing.repeats)
        yield from _field_lines(self.other_fields, "zk")
        for attribute in self.attributes:
            yield f"a={attribute.to_value()}"
        for media in self.media:
            yield from media.to_lines()


def _field_lines(fields: tuple[tuple[str, str], ...], letters: str) -> Iterator[str]:
    for letter in letters:
        yield from (f"{kind}={value}" for kind, value in fields if kind == letter)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@dataclass
class _MediaBuilder:
    """Mutable accumulator for one m= section while its lines are read."""

    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]
    connections: list[Connection] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    other_fields: list[tuple[str, str]] = field(default_factory=list)

    def build(self) -> MediaDescription:
        return MediaDescription(
            self.media, self.port, self.proto, self.formats, self.port_count,
            tuple(self.connections), tuple(self.attributes), tuple(self.other_fields),
        )  # fmt: skip


@dataclass
class _SessionBuilder:
    version: int | None = None
    origin: Origin | None = None
    session_name: str | None = None
    connection: Connection | None = None
    timings: list[Timing] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    other_fields: list[tuple[str, str]] = field(default_factory=list)
    media: list[_MediaBuilder] = field(default_factory=list)

    def build(self) -> SessionDescription:
        if self.origin is None:
            raise SdpError("missing o= line")
        if self.session_name is None:
            raise SdpError("missing s= line")
        if not self.timings:
            raise SdpError("missing t= line")
        description = SessionDescription(
            origin=self.origin,
            session_name=self.session_name,
            timings=tuple(self.timings),
            connection=self.connection,
            attributes=tuple(self.attributes),
            media=tuple(builder.build() for builder in self.media),
            other_fields=tuple(self.other_fields),
            version=self.version or 0,
        )
        _check_connections(description)
        return description


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body; CRLF or bare LF line endings; raises :class:`SdpError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SdpError(f"SDP is not UTF-8 (byte {error.start})") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    # Blank lines carry nothing; a trailing CRLF leaves one, some stacks add more.
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise SdpError("empty SDP body")
    session = _SessionBuilder()
    for number, line in numbered:
        try:
            _read_line(session, line)
        except SdpError as error:
            raise SdpError(f"line {number}: {error}") from None
    return session.build()


def _read_line(session: _SessionBuilder, line: str) -> None:
    if len(line) < 2 or line[1] != "=" or not line[0].islower():
        raise SdpError(f"not a '<type>=<value>' line: {line!r}")
    kind, value = line[0], line[2:]
    if _CONTROL.search(value):
        raise SdpError(f"control character in {kind}= line")
    if session.version is None and kind != "v":
        raise SdpError("SDP must start with v=")
    if kind not in _SESSION_TYPES:
        raise SdpError(f"unknown line type {kind!r}")
    media = session.media[-1] if session.media else None
    if kind == "m":
        session.media.append(_parse_media_line(value))
    elif media is not None:
        _read_media_line(media, kind, value)
    else:
        _read_session_line(session, kind, value)


def _read_session_line(session: _SessionBuilder, kind: str, value: str) -> None:
    if kind == "v":
        if session.version is not None:
            raise SdpError("second v= line")
        if value != "0":
            raise SdpError(f"unsupported SDP version {value!r}")
        session.version = 0
    elif kind == "o":
        if session.origin is not None:
            raise SdpError("second o= line")
        session.origin = _parse_origin(value)
    elif kind == "s":
        if session.session_name is not None:
            raise SdpError("second s= line")
        session.session_name = value
    elif kind == "c":
        if session.connection is not None:
            raise SdpError("second session-level c= line")
        session.connection = _parse_connection(value)
    elif kind == "t":
        session.timings.append(_parse_timing(value))
    elif kind == "r":
        if not session.timings:
            raise SdpError("r= line before any t= line")
        last = session.timings[-1]
        session.timings[-1] = replace(last, repeats=(*last.repeats, value))
    elif kind == "a":
        session.attributes.append(_parse_attribute(value))
    else:
        session.other_fields.append((kind, value))


def _read_media_line(media: _MediaBuilder, kind: str, value: str) -> None:
    if kind not in _MEDIA_TYPES:
        raise SdpError(f"{kind}= line is not allowed inside the m={media.media} section")
    if kind == "c":
        media.connections.append(_parse_connection(value))
    elif kind == "a":
        attribute = _parse_attribute(value)
        _check_payload_attribute(attribute)
        media.attributes.append(attribute)
    else:
        media.other_fields.append((kind, value))


def _parse_origin(value: str) -> Origin:
    parts = value.split(" ")
    if len(parts) != 6 or not all(parts):
        raise SdpError(f"malformed o= line {value!r} (needs 6 fields)")
    return Origin(*parts)


def _parse_connection(value: str) -> Connection:
    parts = value.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SdpError(f"malformed c= line {value!r} (needs nettype addrtype address)")
    return Connection(*parts)


def _parse_timing(value: str) -> Timing:
    parts = value.split(" ")
    if len(parts) != 2 or not all(_is_number(part) for part in parts):
        raise SdpError(f"malformed t= line {value!r} (needs two integers)")
    return Timing(int(parts[0]), int(parts[1]))


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not _ATTRIBUTE_NAME.fullmatch(name):
        raise SdpError(f"malformed attribute name in a={value!r}")
    return Attribute(name, rest if colon else None)


def _check_payload_attribute(attribute: Attribute) -> None:
    if attribute.name == "rtpmap" and not _RTPMAP.fullmatch(attribute.value or ""):
        raise SdpError(f"malformed a=rtpmap:{attribute.value}")
    if attribute.name == "fmtp" and not _FMTP.fullmatch(attribute.value or ""):
        raise SdpError(f"malformed a=fmtp:{attribute.value}")


def _parse_media_line(value: str) -> _MediaBuilder:
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts):
        raise SdpError(f"malformed m= line {value!r} (needs media port proto format...)")
    media, port_text, proto, *formats = parts
    port_number, slash, count_text = port_text.partition("/")
    if not _is_number(port_number) or int(port_number) > 65535:
        raise SdpError(f"bad port {port_text!r} in m={media}")
    if slash and not _is_number(count_text):
        raise SdpError(f"bad port count {port_text!r} in m={media}")
    if proto.upper().startswith("RTP/"):
        for fmt in formats:
            if not _is_number(fmt) or int(fmt) > 127:
                raise SdpError(f"bad RTP payload type {fmt!r} in m={media}")
    count = int(count_text) if slash else None
    return _MediaBuilder(media, int(port_number), count, proto, tuple(formats))


def _is_number(text: str) -> bool:
    # str.isdigit() alone would admit "²" and other Unicode digits that int() refuses.
    return text.isascii() and text.isdigit()


def _check_connections(description: SessionDescription) -> None:
    for media in description.media:
        if media.port != 0 and description.connection_of(media) is None:
            raise SdpError(f"m={media.media} has no c= line and there is no session-level c=")


# --------------------------------------------------------------------------------------------
# SDES-SRTP keys (RFC 4568)
# --------------------------------------------------------------------------------------------

# Twilio's secure media takes these two, in either order, and no MKI (spec §4.5).
SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
SRTP_KEY_BYTES = 30  # 128-bit master key and 112-bit master salt
_CRYPTO = re.compile(r"(?P<tag>[0-9]{1,9}) (?P<suite>[A-Za-z0-9_]+) (?P<keys>\S+)(?: (?P<params>.*))?")


@dataclass(frozen=True)
class CryptoAttribute:
    """One ``a=crypto`` line: its tag, suite, the one inline key, and what else it asked."""

    tag: int
    suite: str
    key: bytes  # master key || master salt, decoded
    lifetime: str | None = None
    mki: str | None = None
    session_params: str = ""

    def to_value(self) -> str:
        keys = "inline:" + base64.b64encode(self.key).decode("ascii")
        if self.lifetime:
            keys += f"|{self.lifetime}"
        if self.mki:
            keys += f"|{self.mki}"
        return " ".join(filter(None, (str(self.tag), self.suite, keys, self.session_params)))


def parse_crypto(value: str) -> CryptoAttribute:
    """Decode one ``a=crypto`` value; several keys (``;``) or a bad key raise SdpError."""
    match = _CRYPTO.fullmatch(value.strip())
    if match is None:
        raise SdpError(f"a=crypto:{value} is not <tag> <suite> <key-params>")
    keys = match["keys"]
    if ";" in keys:
        raise SdpError("a=crypto with several keys (each needs an MKI; MKI is not supported)")
    if not keys.startswith("inline:"):
        raise SdpError(f"a=crypto key method {keys.partition(':')[0]!r} is not inline")
    key_text, *extras = keys[len("inline:"):].split("|")
    try:
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        raise SdpError("a=crypto inline key is not base64") from None
    lifetime = mki = None
    for extra in extras:
        if ":" in extra:
            mki = extra
        else:
            lifetime = extra
    return CryptoAttribute(int(match["tag"]), match["suite"].upper(), key, lifetime, mki,
                           (match["params"] or "").strip())


def choose_crypto(media: MediaDescription) -> CryptoAttribute | str:
    """The first ``a=crypto`` line Twilio would accept, or why none is acceptable."""
    values = media.attribute_values("crypto")
    if not values:
        return "SRTP offered without an a=crypto line (no SDES key)"
    reasons = []
    for value in values:
        try:
            crypto = parse_crypto(value)
        except SdpError as err:
            reasons.append(str(err))
            continue
        if crypto.suite not in SRTP_SUITES:
            reasons.append(f"suite {crypto.suite} is not supported")
        elif crypto.mki is not None:
            reasons.append(f"tag {crypto.tag} has an MKI ({crypto.mki}); MKI is not supported")
        elif len(crypto.key) != SRTP_KEY_BYTES:
            reasons.append(f"tag {crypto.tag} key is {len(crypto.key)} bytes, not 30")
        elif crypto.session_params:
            reasons.append(f"tag {crypto.tag} session parameters {crypto.session_params!r} "
                           "are not supported")
        else:
            return crypto
    return "no acceptable a=crypto line: " + "; ".join(reasons)


def srtp_refusal(offer: SessionDescription) -> str | None:
    """Why the first active SRTP audio stream of ``offer`` cannot be keyed, or None."""
    media = next((m for m in offer.media if m.media == "audio" and m.port != 0 and m.is_rtp),
                 None)
    if media is None or not media.is_srtp:
        return None
    chosen = choose_crypto(media)
    return chosen if isinstance(chosen, str) else None


# --------------------------------------------------------------------------------------------
# Offer / answer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferSummary:
    """What the offer said, for the pipeline's checks (32207/32208) and diagnostics."""

    connection_address: str | None  # of the first active audio stream
    srtp_offered: bool
    crypto_suites: tuple[str, ...]
    telephone_event_offered: bool
    audio_codecs: tuple[str, ...]  # encoding names in offer order

    @property
    def connection_is_private(self) -> bool:
        """True when c= names an address unreachable from the Internet (RFC 1918, CGNAT,
        loopback, link-local, ULA): the classic NAT misconfiguration behind one-way audio."""
        if self.connection_address is None:
            return False
        try:
            address = ipaddress.ip_address(self.connection_address)
        except ValueError:  # a host name: nothing to say
            return False
        return any(address in network for network in _NON_ROUTABLE_NETWORKS)


@dataclass(frozen=True)
class Answer:
    description: SessionDescription
    codec: Codec
    telephone_event: Codec | None
    direction: str
    offer: OfferSummary
    # SDES: (the caller's accepted line, our line answering it) when the stream is SRTP
    crypto: tuple[CryptoAttribute, CryptoAttribute] | None = None

    def to_bytes(self) -> bytes:
        return self.description.to_bytes()


@dataclass(frozen=True)
class NoCommonCodec:
    """Nothing acceptable was offered; the SIP layer answers 488 Not Acceptable Here."""

    offer: OfferSummary
    reason: str

    # mypyc: a ClassVar on a dataclass becomes a read-only field (mypyc/mypyc#1122)
    @property
    def sip_status(self) -> int:
        return 488


def answer_offer(
    offer: SessionDescription,
    local_ip: str,
    local_port: int,
    session_id: int,
    preferred: Iterable[str] = ("PCMU", "PCMA"),
    *,
    session_name: str = "Twilio Media Gateway",
    version: int | None = None,
    srtp_key: bytes | None = None,
) -> Answer | NoCommonCodec:
    """Answer per RFC 3264: accept the first active audio stream that offers an acceptable
    codec, choosing the first acceptable codec in the *offer's* order; every other stream is
    rejected with port 0. ``preferred`` names the acceptable codecs.

    The answer keeps the offer's transport profile (RFC 3264 §6.1). An SRTP stream is
    answered with one ``a=crypto`` line carrying ``srtp_key`` (30 bytes, ours) under the tag
    and suite of the first acceptable offered line; without ``srtp_key``, or with no
    acceptable line, the SRTP stream is refused. ``version`` is the o= line's session version
    (RFC 3264 §8: it grows by one each time our description changes).
    """
    acceptable = tuple(name.upper() for name in preferred)
    if srtp_key is not None:
        return _answer_offer(offer, local_ip, local_port, session_id, acceptable, session_name,
                             version, srtp_key)
    key = (id(offer), local_ip, session_id, acceptable, session_name, version)
    template = _ANSWER_TEMPLATES.get(key)
    if template is not None and template.offer is offer:
        return template.answer_on(local_port)
    answer = _answer_offer(offer, local_ip, local_port, session_id, acceptable, session_name,
                           version, None)
    if isinstance(answer, Answer) and local_port > 0:
        try:
            made = _AnswerTemplate(offer, answer, local_port)
        except (StopIteration, ValueError):
            return answer  # no template: every call builds its answer
        if len(_ANSWER_TEMPLATES) >= _ANSWER_TEMPLATES_MAX:
            _ANSWER_TEMPLATES.clear()
        _ANSWER_TEMPLATES[key] = made
    return answer


def _answer_offer(offer: SessionDescription, local_ip: str, local_port: int, session_id: int,
                  acceptable: tuple[str, ...], session_name: str, version: int | None,
                  srtp_key: bytes | None) -> Answer | NoCommonCodec:
    summary = summarize_offer(offer)
    accepted: tuple[Codec, Codec | None, str] | None = None  # codec, telephone-event, direction
    keys: tuple[CryptoAttribute, CryptoAttribute] | None = None
    answer_media: list[MediaDescription] = []
    for media in offer.media:
        codec = _pick_codec(media, acceptable) if accepted is None else None
        theirs = choose_crypto(media) if codec is not None and media.is_srtp else None
        if codec is None or isinstance(theirs, str) or (theirs is not None and srtp_key is None):
            answer_media.append(_rejected(media))
            continue
        event = _telephone_event(media)
        direction = _MIRRORED_DIRECTION[offer.direction_of(media)]
        line = _accepted(media, local_port, codec, event, direction)
        if theirs is not None and srtp_key is not None:
            ours = CryptoAttribute(theirs.tag, theirs.suite, srtp_key)
            line = replace(line, attributes=(*line.attributes, Attribute("crypto", ours.to_value())))
            keys = (theirs, ours)
        answer_media.append(line)
        accepted = (codec, event, direction)
    if accepted is None:
        return NoCommonCodec(summary, _no_codec_reason(offer, acceptable))
    codec, event, direction = accepted
    version_text = str(session_id if version is None else version)
    description = SessionDescription(
        origin=Origin("-", str(session_id), version_text, "IN", _addr_type(local_ip), local_ip),
        session_name=session_name,
        connection=Connection("IN", _addr_type(local_ip), local_ip),
        media=tuple(answer_media),
    )
    return Answer(description, codec, event, direction, summary, keys)


class _AnswerTemplate:
    """An answer without SRTP to one (shared, immutable) parsed offer differs from call to
    call only in its media port: the answer is built and serialised once, and each call gets
    a copy with its port, the serialised form spliced around the port's digits."""

    __slots__ = ("answer", "head", "index", "offer", "tail")

    def __init__(self, offer: SessionDescription, answer: Answer, port: int) -> None:
        self.offer, self.answer = offer, answer
        description = answer.description
        self.index = next(i for i, m in enumerate(description.media) if m.port == port)
        media = description.media[self.index]
        text = description.to_bytes().decode("utf-8")
        # The accepted m= line: "m=<media> <port> <proto> <formats>"; counted from the
        # end, as the session-level lines (o=, s=) are free text.
        after = "".join(line + "\r\n" for m in description.media[self.index + 1:]
                        for line in m.to_lines())
        own = "".join(line + "\r\n" for line in media.to_lines())
        before = text[: len(text) - len(after) - len(own)]
        prefix = f"m={media.media} "
        if not (own.startswith(prefix + f"{port} ") and text.endswith(own + after)):
            raise ValueError("the answer does not serialise as expected")
        self.head = (before + prefix).encode("utf-8")
        self.tail = (own[len(prefix) + len(str(port)):] + after).encode("utf-8")

    def answer_on(self, port: int) -> Answer:
        answer = self.answer
        description = answer.description
        media = description.media[self.index]
        moved = MediaDescription(media.media, port, media.proto, media.formats, media.port_count,
                                 media.connections, media.attributes, media.other_fields)
        codecs = getattr(media, "_codecs", None)
        if codecs is not None:
            object.__setattr__(moved, "_codecs", codecs)
        lines = description.media
        copy = SessionDescription(description.origin, description.session_name,
                                  description.timings, description.connection,
                                  description.attributes,
                                  (*lines[: self.index], moved, *lines[self.index + 1:]),
                                  description.other_fields, description.version)
        object.__setattr__(copy, "_bytes", self.head + str(port).encode() + self.tail)
        return Answer(copy, answer.codec, answer.telephone_event, answer.direction,
                      answer.offer, None)


_ANSWER_TEMPLATES: dict[tuple[object, ...], _AnswerTemplate] = {}
_ANSWER_TEMPLATES_MAX = 256


def refuse_offer(offer: SessionDescription,
                 preferred: Iterable[str] = ("PCMU", "PCMA")) -> NoCommonCodec | None:
    """What :func:`answer_offer` would refuse, without building the answer: the pipeline
    decides on the offer before the voice layer has a media port to answer with."""
    acceptable = tuple(name.upper() for name in preferred)
    if any(_pick_codec(media, acceptable) is not None for media in offer.media):
        return None
    return NoCommonCodec(summarize_offer(offer), _no_codec_reason(offer, acceptable))


def summarize_offer(offer: SessionDescription) -> OfferSummary:
    # frozen: computed once per parsed offer (getattr: mypyc leaves init=False fields unset)
    cached: OfferSummary | None = getattr(offer, "_summary", None)
    if cached is None:
        cached = _summarize(offer)
        object.__setattr__(offer, "_summary", cached)
    return cached


def _summarize(offer: SessionDescription) -> OfferSummary:
    audio = [m for m in offer.media if m.media == "audio"]
    primary = next((m for m in audio if m.port != 0), None)
    connection = offer.connection_of(primary) if primary is not None else None
    codecs = primary.codecs() if primary is not None else ()
    crypto = [value.split(" ")[1] for m in audio for value in m.attribute_values("crypto")
              if len(value.split(" ")) > 1]  # fmt: skip
    return OfferSummary(
        connection_address=connection.host if connection is not None else None,
        srtp_offered=any(m.is_srtp for m in audio),
        crypto_suites=tuple(dict.fromkeys(crypto)),
        telephone_event_offered=any(c.name.lower() == TELEPHONE_EVENT for c in codecs),
        audio_codecs=tuple(c.name for c in codecs),
    )


def _pick_codec(media: MediaDescription, acceptable: tuple[str, ...]) -> Codec | None:
    if media.media != "audio" or media.port == 0 or not media.is_rtp:
        return None
    return next((c for c in media.codecs() if any(c.is_(name) for name in acceptable)), None)


def _telephone_event(media: MediaDescription) -> Codec | None:
    return next((c for c in media.codecs() if c.is_(TELEPHONE_EVENT)), None)


def _accepted(
    offered: MediaDescription, port: int, codec: Codec, event: Codec | None, direction: str
) -> MediaDescription:
    formats = [str(codec.payload_type)]
    attributes = [Attribute("rtpmap", f"{codec.payload_type} {codec.name}/{codec.clock_rate}")]
    if event is not None:
        formats.append(str(event.payload_type))
        attributes += [
            Attribute("rtpmap", f"{event.payload_type} {TELEPHONE_EVENT}/8000"),
            Attribute("fmtp", f"{event.payload_type} {event.fmtp or DEFAULT_EVENTS}"),
        ]
    attributes += [Attribute("ptime", "20"), Attribute(direction)]
    return MediaDescription(
        "audio", port, offered.proto, tuple(formats), attributes=tuple(attributes)
    )


def _rejected(offered: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: same media type and formats, port zero.
    return MediaDescription(offered.media, 0, offered.proto, offered.formats)


def _no_codec_reason(offer: SessionDescription, acceptable: tuple[str, ...]) -> str:
    audio = [m for m in offer.media if m.media == "audio"]
    if not audio:
        return "no audio stream offered"
    active = [m for m in audio if m.port != 0 and m.is_rtp]
    if not active:
        return "no active RTP audio stream offered"
    keyed = [choose_crypto(m) for m in active if m.is_srtp]
    if keyed:
        unkeyable = next((k for k in keyed if isinstance(k, str)), None)
        return f"SRTP offered but not answered: {unkeyable or 'no key of our own to answer with'}"
    offered = [c.name for m in active for c in m.codecs()]
    return (
        f"no {' or '.join(acceptable)} offered (offered: {', '.join(offered) or 'nothing known'})"
    )


def _addr_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def make_offer(
    local_ip: str,
    port: int,
    session_id: int,
    codecs: Iterable[str] = ("PCMU", "PCMA"),
    telephone_event: bool = True,
    *,
    direction: str = "sendrecv",
    session_name: str = "siptwin",
    crypto: Iterable[str] = (),
    version: int | None = None,
) -> bytes:
    """An audio offer for siptwin's own test clients, using static payload types.

    ``crypto`` values become ``a=crypto`` lines on an ``RTP/SAVP`` stream."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    formats: list[str] = []
    attributes: list[Attribute] = []
    for name in codecs:
        pt = _STATIC_BY_NAME.get(name.upper())
        if pt is None:
            raise ValueError(f"no static payload type for {name!r}")
        formats.append(str(pt))
        attributes.append(Attribute("rtpmap", f"{pt} {name.upper()}/8000"))
    if telephone_event:
        pt = DEFAULT_TELEPHONE_EVENT_PT
        formats.append(str(pt))
        attributes += [
            Attribute("rtpmap", f"{pt} {TELEPHONE_EVENT}/8000"),
            Attribute("fmtp", f"{pt} {DEFAULT_EVENTS}"),
        ]
    attributes += [Attribute("ptime", "20"), Attribute(direction)]
    keys = tuple(crypto)
    attributes += [Attribute("crypto", value) for value in keys]
    addr_type = _addr_type(local_ip)
    version_text = str(session_id if version is None else version)
    description = SessionDescription(
        origin=Origin("-", str(session_id), version_text, "IN", addr_type, local_ip),
        session_name=session_name,
        connection=Connection("IN", addr_type, local_ip),
        media=(
            MediaDescription(
                "audio", port, "RTP/SAVP" if keys else "RTP/AVP", tuple(formats),
                attributes=tuple(attributes)
            ),
        ),
    )
    return description.to_bytes()


for _cls in (Origin, Connection, Timing, Attribute, Codec, MediaDescription, SessionDescription,
             CryptoAttribute, OfferSummary, Answer, NoCommonCodec):
    quicken(_cls)
