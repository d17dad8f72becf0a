"""Digest access authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Sans-IO: no sockets and no clock reads. Time enters as ``now`` (seconds, float); randomness
for nonces and cnonces may be passed in and otherwise comes from :mod:`secrets`.

Server-side flow for one request carrying ``Proxy-Authorization``::

    creds = parse_credentials(header_value)
    status = issuer.check(creds.nonce, now, realm, context)   # INVALID -> new challenge
    result = verify(creds, method, stored_ha1)                # not ok -> 403 / new challenge
    if status is NonceStatus.STALE: re-challenge with stale=true (the password was right)
    elif not tracker.accept(creds.nonce, creds.nc): refuse as a replay

``stale=true`` is only honest after the digest verified (RFC 2617 §3.2.1), and the nonce
count is only recorded after it verified, so a forger cannot burn a client's counts.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from .entropy import random_bytes as _random_bytes

__all__ = [
    "Challenge",
    "Credentials",
    "DigestError",
    "DigestSyntaxError",
    "NonceCountTracker",
    "NonceIssuer",
    "NonceStatus",
    "VerifyFailure",
    "VerifyResult",
    "answer_challenge",
    "compute_ha1",
    "compute_response",
    "make_challenge",
    "make_opaque",
    "nonce_context",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
    "supported_algorithm",
    "verify",
]


class DigestError(ValueError):
    """A digest exchange that cannot proceed (unsupported algorithm, challenge lacking a nonce)."""


class DigestSyntaxError(DigestError):
    """An authentication header value that does not follow the grammar."""


# --------------------------------------------------------------------------------------------
# Grammar pieces
# --------------------------------------------------------------------------------------------

# Union of the RFC 3261 and RFC 7230 token alphabets: a tolerant reader of either family.
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~#$&^|"
)
_WHITESPACE = " \t"
# A header value still carrying line folding (CRLF followed by whitespace) is one logical line.
_FOLDING = re.compile(r"\r?\n[ \t]+")


_TOKEN_RUN = re.compile("[" + re.escape("".join(sorted(_TOKEN_CHARS))) + "]+")
_TOKEN_TEXT = re.compile("[" + re.escape("".join(sorted(_TOKEN_CHARS))) + "]+\\Z")
# What _quote must escape: the quote, the backslash and control characters but HTAB.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')


def _is_token(text: str) -> bool:
    return _TOKEN_TEXT.match(text) is not None


class _Scanner:
    """A cursor over one header value; every failure names what was expected and where."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_whitespace(self) -> bool:
        start = self.pos
        while self.peek() and self.peek() in _WHITESPACE:
            self.pos += 1
        return self.pos > start

    def fail(self, defect: str) -> DigestSyntaxError:
        return DigestSyntaxError(f"{defect} at offset {self.pos} of {self.text!r}")

    def read_token(self, what: str) -> str:
        start = self.pos
        match = _TOKEN_RUN.match(self.text, start)
        if match is not None:
            self.pos = match.end()
        if self.pos == start:
            found = repr(self.peek()) if self.peek() else "end of value"
            raise self.fail(f"expected {what}, found {found}")
        return self.text[start : self.pos]

    def read_quoted(self) -> str:
        """Read a quoted-string (the cursor is on the opening quote) and return it unescaped."""
        self.pos += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.fail("unterminated quoted string")
            self.pos += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                escaped = self.peek()
                if not escaped:
                    raise self.fail("unterminated quoted string (trailing backslash)")
                if escaped in "\r\n":
                    raise self.fail("line break escaped inside quoted string")
                chars.append(escaped)
                self.pos += 1
            elif _is_forbidden_control(char):
                raise self.fail(f"control character {char!r} inside quoted string")
            else:
                chars.append(char)


def _is_forbidden_control(char: str) -> bool:
    return (ord(char) < 0x20 and char != "\t") or char == "\x7f"


def _unfold(value: str) -> str:
    return _FOLDING.sub(" ", value)


# A well-formed parameter list in one regex pass: the elements, each ending at a comma or at
# the end, must follow each other without a gap and cover the whole text. The quoted-string
# is written as runs of plain characters between escapes (not one alternation per character),
# which the regex engine takes several times faster. The character scanner below stays the
# reference: any list the elements do not tile goes to it, so errors keep their messages.
_TOKEN_RE = r"[A-Za-z0-9\-.!%*_+`'~#$&^|]+"
_QUOTED_RUN = r"[^\"\\\x00-\x08\x0a-\x1f\x7f]*"
_QUOTED_RE = rf"{_QUOTED_RUN}(?:\\[^\x00-\x08\x0a-\x1f\x7f]{_QUOTED_RUN})*"
_PARAM_RE = re.compile(
    rf"[ \t]*({_TOKEN_RE})[ \t]*=[ \t]*(?:\"({_QUOTED_RE})\"|({_TOKEN_RE}))[ \t]*(?:,|\Z)"
)
_ESCAPE_RE = re.compile(r"\\(.)")


def _parse_params(text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``name=value`` pairs separated by commas; names come back lower-cased."""
    fast = _parse_params_fast(text)
    return fast if fast is not None else _parse_params_scanned(text)


def _parse_params_fast(text: str) -> tuple[tuple[str, str], ...] | None:
    if not text or text[-1] == ",":  # a trailing comma: an empty element, for the scanner
        return () if not text else None
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    end = 0
    for match in _PARAM_RE.finditer(text):
        if match.start() != end:
            return None
        end = match.end()
        name, quoted, token = match.groups()
        name = name.lower()
        if name in seen:
            return None  # let the scanner name the duplicate
        seen.add(name)
        # A token is never empty: an empty one means the value was the quoted-string.
        params.append((name, token or (_ESCAPE_RE.sub(r"\1", quoted) if "\\" in quoted
                                       else quoted)))
    if end != len(text):
        return None
    return tuple(params)


def _parse_params_scanned(text: str) -> tuple[tuple[str, str], ...]:
    scanner = _Scanner(text)
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    while True:
        scanner.skip_whitespace()
        if scanner.at_end():
            break
        if scanner.peek() == ",":  # empty list element, allowed by the #rule
            scanner.pos += 1
            continue
        name = scanner.read_token("parameter name").lower()
        scanner.skip_whitespace()
        if scanner.peek() != "=":
            raise scanner.fail(f"expected '=' after parameter {name!r}")
        scanner.pos += 1
        scanner.skip_whitespace()
        if scanner.peek() == '"':
            value = scanner.read_quoted()
        else:
            value = scanner.read_token(f"value of parameter {name!r}")
        if name in seen:
            raise scanner.fail(f"duplicate parameter {name!r}")
        seen.add(name)
        params.append((name, value))
        scanner.skip_whitespace()
        if scanner.at_end():
            break
        if scanner.peek() != ",":
            raise scanner.fail(f"expected ',' after parameter {name!r}, found {scanner.peek()!r}")
        scanner.pos += 1
    return tuple(params)


def _split_scheme(value: str) -> tuple[str, str]:
    """Split ``scheme rest`` into its two parts, checking the scheme is a token."""
    if "\r" not in value and "\n" not in value:  # one line: no scanner needed
        text = value.strip(_WHITESPACE)
        match = _TOKEN_RUN.match(text)
        if match is not None:
            end = match.end()
            if end == len(text) or text[end] in _WHITESPACE:
                return match.group(), text[end:].lstrip(_WHITESPACE)
    text = _unfold(value).strip(_WHITESPACE)
    scanner = _Scanner(text)
    scheme = scanner.read_token("authentication scheme")
    if not scanner.at_end() and not scanner.skip_whitespace():
        raise scanner.fail(f"expected whitespace after scheme {scheme!r}")
    rest = text[scanner.pos :]
    if "\r" in rest or "\n" in rest:
        raise scanner.fail("line break inside header value")
    return scheme, rest


def _quote(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise DigestSyntaxError(f"parameter value {value!r} contains a line break")
    if _NEEDS_ESCAPE.search(value) is None:
        return f'"{value}"'
    escaped = "".join(
        "\\" + char if char in '"\\' or _is_forbidden_control(char) else char for char in value
    )
    return f'"{escaped}"'


# --------------------------------------------------------------------------------------------
# Header values
# --------------------------------------------------------------------------------------------


_CHALLENGE_QUOTED = frozenset({"realm", "domain", "nonce", "opaque", "qop"})
_CREDENTIALS_QUOTED = frozenset(
    {"username", "realm", "nonce", "uri", "response", "cnonce", "opaque"}
)


@dataclass(frozen=True)
class _AuthHeaderValue:
    """Scheme plus ordered parameters; non-Digest schemes keep their text in ``raw``."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    raw: str = ""
    # mypyc: no instance __dict__ on a native class, so the memo is a declared field
    _lookup: dict[str, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    # Parameters the grammar writes as quoted-string; the rest are bare tokens when they can be.
    # mypyc: a ClassVar on a dataclass becomes a read-only field (mypyc/mypyc#1122)
    @property
    def _QUOTED(self) -> frozenset[str]:
        return frozenset()

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    def get(self, name: str) -> str | None:
        return self._values().get(name.lower())

    def _values(self) -> dict[str, str]:
        """The first value of each parameter name, by name (what ``get`` reads; verification
        asks a dozen times, so the SIP core reads it by lower-case name without ``get``).
        Kept beside the (frozen) fields, outside equality."""
        # getattr: mypyc leaves an init=False field unset despite its default
        lookup: dict[str, str] | None = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = {}
            for key, value in self.params:
                lookup.setdefault(key, value)
            object.__setattr__(self, "_lookup", lookup)
        return lookup

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    # The parameter properties read their lower-case names from _values, not through get:
    # the pipeline asks several of them for every answered challenge.
    @property
    def realm(self) -> str | None:
        return self._values().get("realm")

    @property
    def nonce(self) -> str | None:
        return self._values().get("nonce")

    @property
    def opaque(self) -> str | None:
        return self._values().get("opaque")

    @property
    def algorithm(self) -> str:
        """The algorithm named, or ``MD5``, the default when the parameter is absent."""
        return _algorithm_and_qop(self._values().get)[0]

    def to_header(self) -> str:
        """Serialise as the value of the header (without the header name)."""
        if not self.is_digest:
            return f"{self.scheme} {self.raw}".rstrip()
        rendered = ", ".join(f"{name}={self._render(name, value)}" for name, value in self.params)
        return f"{self.scheme} {rendered}".rstrip()

    def _render(self, name: str, value: str) -> str:
        # Values that are not tokens (empty, spaces, commas) must be quoted to survive parsing.
        if name in self._QUOTED or not _is_token(value):
            return _quote(value)
        return value


@dataclass(frozen=True)
class Challenge(_AuthHeaderValue):
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value."""

    @property
    def _QUOTED(self) -> frozenset[str]:
        return _CHALLENGE_QUOTED

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The qop values offered, lower-cased; empty for an RFC 2069 challenge."""
        qop = self.get("qop")
        if qop is None:
            return ()
        return tuple(option.strip().lower() for option in qop.split(",") if option.strip())

    @property
    def stale(self) -> bool:
        return (self.get("stale") or "").lower() == "true"


@dataclass(frozen=True)
class Credentials(_AuthHeaderValue):
    """An ``Authorization`` / ``Proxy-Authorization`` value."""

    @property
    def _QUOTED(self) -> frozenset[str]:
        return _CREDENTIALS_QUOTED

    @property
    def username(self) -> str | None:
        return self._values().get("username")

    @property
    def uri(self) -> str | None:
        return self._values().get("uri")

    @property
    def response(self) -> str | None:
        return self._values().get("response")

    @property
    def cnonce(self) -> str | None:
        return self._values().get("cnonce")

    @property
    def qop(self) -> str | None:
        return _algorithm_and_qop(self._values().get)[1]

    @property
    def nc(self) -> int | None:
        """The nonce count as a number, or None when absent or not 8 hex digits."""
        text = self._values().get("nc")
        if text is None or not _NC_FORMAT.fullmatch(text):
            return None
        return int(text, 16)


_NC_FORMAT = re.compile(r"[0-9a-fA-F]{8}")


_HeaderT = TypeVar("_HeaderT", bound=_AuthHeaderValue)


def _parse_value(value: str, kind: type[_HeaderT]) -> _HeaderT:
    scheme, rest = _split_scheme(value)
    if scheme.lower() != "digest":
        return kind(scheme=scheme, raw=rest)
    return kind(scheme=scheme, params=_parse_params(rest))


def parse_challenge(value: str) -> Challenge:
    """Parse one ``WWW-Authenticate`` / ``Proxy-Authenticate`` value."""
    return _parse_value(value, Challenge)


def parse_credentials(value: str) -> Credentials:
    """Parse one ``Authorization`` / ``Proxy-Authorization`` value."""
    return _parse_value(value, Credentials)


def parse_challenges(value: str) -> tuple[Challenge, ...]:
    """Parse a value holding several comma-joined challenges (RFC 8760 lets a server offer
    SHA-256 and MD5 side by side); a list element of the form ``token SP ...`` not followed by
    ``=`` starts a new challenge."""
    groups: list[list[str]] = []
    for element in _split_top_level(_unfold(value)):
        if not groups or _starts_challenge(element):
            groups.append([element])
        else:
            groups[-1].append(element)
    if not groups:
        raise DigestSyntaxError(f"no challenge in {value!r}")
    return tuple(parse_challenge(",".join(group)) for group in groups)


def _starts_challenge(element: str) -> bool:
    match = re.match(r"[ \t]*[^ \t=,\"]+[ \t]+(.)", element)
    return match is not None and match.group(1) != "="


def _split_top_level(text: str) -> Iterator[str]:
    """Split on commas outside quoted strings (escapes honoured)."""
    start, in_quotes, index = 0, False, 0
    while index < len(text):
        char = text[index]
        if in_quotes and char == "\\":
            index += 1
        elif char == '"':
            in_quotes = not in_quotes
        elif char == "," and not in_quotes:
            yield text[start:index]
            start = index + 1
        index += 1
    yield text[start:]


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------

_HASHES: dict[str, Callable[[bytes], str]] = {
    "md5": lambda data: hashlib.md5(data).hexdigest(),
    "sha-256": lambda data: hashlib.sha256(data).hexdigest(),
    "sha-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}


class _Algorithm(NamedTuple):  # made three times per answer verified: a tuple is cheapest
    hash_hex: Callable[[bytes], str]
    session: bool


def supported_algorithm(name: str) -> bool:
    """True for MD5, SHA-256, SHA-512-256 and their ``-sess`` variants (any case)."""
    return _algorithm(name) is not None


def _algorithm(name: str) -> _Algorithm | None:
    lowered = name.lower()
    session = lowered.endswith("-sess")
    base = lowered.removesuffix("-sess")
    hash_hex = _HASHES.get(base)
    return _Algorithm(hash_hex, session) if hash_hex else None


def _require_algorithm(name: str) -> _Algorithm:
    algorithm = _algorithm(name)
    if algorithm is None:
        raise DigestError(f"unsupported digest algorithm {name!r}")
    return algorithm


def _h(algorithm: _Algorithm, *parts: str) -> str:
    return algorithm.hash_hex(":".join(parts).encode("utf-8"))


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password) in hex: the value a server stores instead of the password.

    For ``-sess`` algorithms this is still the stored (pre-session) value; the session key
    H(HA1:nonce:cnonce) is derived per exchange by :func:`compute_response`.
    """
    return _h(_require_algorithm(algorithm), username, realm, password)


def compute_response(
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 2617 §3.2.2.1 / RFC 7616 §3.4.1 from a stored HA1.

    ``qop`` None gives the RFC 2069 form H(HA1:nonce:HA2); ``nc`` is the 8-hex-digit text
    exactly as sent, since the hash covers the characters, not the number.
    """
    algo = _require_algorithm(algorithm)
    if algo.session:
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce")
        ha1 = _h(algo, ha1, nonce, cnonce)
    a2 = (method, uri, algo.hash_hex(body)) if qop == "auth-int" else (method, uri)
    ha2 = _h(algo, *a2)
    if qop is None:
        return _h(algo, ha1, nonce, ha2)
    if nc is None or cnonce is None:
        raise DigestError(f"qop={qop} needs nc and cnonce")
    return _h(algo, ha1, nonce, nc, cnonce, qop, ha2)


# --------------------------------------------------------------------------------------------
# Server side: nonces, challenges, verification, replay tracking
# --------------------------------------------------------------------------------------------


class NonceStatus(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # ours and untampered, but expired: re-challenge with stale=true
    INVALID = "invalid"  # forged, malformed, or bound to another realm/context


_LENGTH = struct.Struct(">I")  # a length before each part
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def nonce_context(*parts: str) -> bytes:
    """Encode the values a nonce is bound to (e.g. Call-ID and source IP) unambiguously."""
    pieces: list[bytes] = []
    for part in parts:  # (a loop, not a generator: this runs for every INVITE)
        data = part.encode("utf-8")
        pieces.append(_LENGTH.pack(len(data)))
        pieces.append(data)
    return b"".join(pieces)


def _length_prefixed(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


class NonceIssuer:
    """Stateless nonces: any node holding ``secret`` can check a nonce any node issued.

    Layout (36 bytes, 48 base64url characters, Twilio's observed nonce length):
    6-byte issue time in milliseconds | 6 random bytes | first 24 bytes of
    HMAC-SHA256(secret, time | salt | realm | context). The random salt keeps two challenges
    for the same Call-ID within one millisecond distinct, so their nonce counts never collide;
    192 bits of MAC leave forgery out of reach.
    """

    NONCE_LENGTH = 48
    _TIME_BYTES = 6
    _SALT_BYTES = 6
    _MAC_BYTES = 24
    _NONCE_FORMAT = re.compile(r"[A-Za-z0-9_-]{48}")

    def __init__(self, secret: bytes, lifetime: float = 300.0) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("nonce lifetime must be positive")
        self._secret = secret
        self.lifetime = lifetime
        # The keyed state, set up once: each MAC copies it (hmac.digest keys OpenSSL anew
        # on every call, about twice the cost).
        keyed = hmac.new(secret, digestmod="sha256")
        # The OpenSSL object inside, when there is one: copying it directly skips the Python
        # wrapper's copy (a new instance and its fields) on every nonce issued or checked.
        self._keyed: Any = getattr(keyed, "_hmac", None) or keyed

    @property
    def secret(self) -> bytes:
        """The MAC key: processes that must check each other's nonces share it."""
        return self._secret

    def issue(self, now: float, realm: str, context: bytes = b"", salt: bytes | None = None) -> str:
        """A fresh nonce for ``realm`` bound to ``context``; ``salt`` is for deterministic tests."""
        if now < 0:
            raise ValueError("now must not be negative")
        salt = _random_bytes(self._SALT_BYTES) if salt is None else salt
        if len(salt) != self._SALT_BYTES:
            raise ValueError(f"salt must be {self._SALT_BYTES} bytes")
        stamp = int(now * 1000).to_bytes(self._TIME_BYTES, "big")
        raw = stamp + salt + self._mac(stamp, salt, realm, context)
        # binascii and the URL-safe alphabet swapped in: what urlsafe_b64encode does, fewer calls
        return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).decode("ascii")

    def check(self, nonce: str, now: float, realm: str, context: bytes = b"") -> NonceStatus:
        if not self._NONCE_FORMAT.fullmatch(nonce):
            return NonceStatus.INVALID
        raw = binascii.a2b_base64(nonce.encode("ascii").translate(_FROM_URLSAFE))
        stamp = raw[: self._TIME_BYTES]
        salt = raw[self._TIME_BYTES : self._TIME_BYTES + self._SALT_BYTES]
        mac = raw[self._TIME_BYTES + self._SALT_BYTES :]
        if not hmac.compare_digest(mac, self._mac(stamp, salt, realm, context)):
            return NonceStatus.INVALID
        age = now - int.from_bytes(stamp, "big") / 1000
        if age < 0:  # from our future: not something we handed out
            return NonceStatus.INVALID
        return NonceStatus.VALID if age <= self.lifetime else NonceStatus.STALE

    def _mac(self, stamp: bytes, salt: bytes, realm: str, context: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(stamp + salt + _length_prefixed(realm.encode("utf-8")) + context)
        return mac.digest()[: self._MAC_BYTES]


def make_opaque(random_bytes: bytes | None = None) -> str:
    """32 hex characters, the shape of Twilio's observed ``opaque``."""
    data = secrets.token_bytes(16) if random_bytes is None else random_bytes
    if len(data) != 16:
        raise ValueError("opaque needs 16 bytes")
    return data.hex()


def make_challenge(
    realm: str,
    nonce: str,
    opaque: str | None = None,
    algorithm: str | None = None,
    qop: str | None = "auth",
    stale: bool = False,
) -> Challenge:
    """A Digest challenge. Twilio's: realm="sip.twilio.com", qop="auth", no algorithm (MD5).

    Parameter order follows Twilio's observed header: realm, qop, nonce, opaque.
    """
    if algorithm is not None and not supported_algorithm(algorithm):
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    params: list[tuple[str, str]] = [("realm", realm)]
    if qop is not None:
        params.append(("qop", qop))
    params.append(("nonce", nonce))
    if opaque is not None:
        params.append(("opaque", opaque))
    if algorithm is not None:
        params.append(("algorithm", algorithm))
    if stale:
        params.append(("stale", "true"))
    return Challenge(scheme="Digest", params=tuple(params))


class VerifyFailure(enum.StrEnum):
    NOT_DIGEST = "not-digest"
    MISSING_PARAM = "missing-param"
    MALFORMED_PARAM = "malformed-param"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    UNSUPPORTED_QOP = "unsupported-qop"
    URI_MISMATCH = "uri-mismatch"
    OPAQUE_MISMATCH = "opaque-mismatch"
    HA1_MISMATCH = "ha1-algorithm-mismatch"
    BAD_RESPONSE = "bad-response"


@dataclass(frozen=True)
class VerifyResult:
    failure: VerifyFailure | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def reason(self) -> str:
        return "ok" if self.failure is None else self.failure.value


_SUPPORTED_QOPS = frozenset({"auth", "auth-int"})


def verify(
    credentials: Credentials,
    method: str,
    ha1: str,
    body: bytes = b"",
    expected_uri: str | None = None,
    *,
    expected_opaque: str | None = None,
    require_qop: bool = False,
) -> VerifyResult:
    """Check the response in ``credentials`` from the stored HA1 alone.

    ``ha1`` must have been computed with the hash of ``credentials.algorithm`` (MD5 HA1 for
    MD5/MD5-sess, and so on). ``expected_uri`` None skips the uri check — some clients (SIPp)
    send ``sip:<ip>:<port>`` instead of the Request-URI; the digest still covers what they sent.
    Nonce freshness and nonce-count replay are separate (:class:`NonceIssuer`,
    :class:`NonceCountTracker`).
    """
    shape = _check_shape(credentials, expected_uri, expected_opaque, require_qop)
    if isinstance(shape, VerifyResult):
        return shape
    algorithm_name, algorithm, qop = shape
    if len(ha1) != len(algorithm.hash_hex(b"")):
        return VerifyResult(
            VerifyFailure.HA1_MISMATCH, f"stored HA1 is not a {algorithm_name} digest"
        )
    get = credentials._values().get  # (credentials.uri, .nonce ... without a call each)
    expected = compute_response(
        ha1.lower(),
        method,
        get("uri") or "",
        get("nonce") or "",
        algorithm=algorithm_name,
        qop=qop,
        nc=get("nc"),
        cnonce=get("cnonce"),
        body=body,
    )
    given = (get("response") or "").lower()
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8")):
        return VerifyResult(VerifyFailure.BAD_RESPONSE, "response does not match")
    return VerifyResult()


def _check_shape(
    credentials: Credentials,
    expected_uri: str | None,
    expected_opaque: str | None,
    require_qop: bool,
) -> VerifyResult | tuple[str, _Algorithm, str | None]:
    """A failure, or what the answer is verified with: its algorithm (as named, and its hash)
    and its qop."""
    if not credentials.is_digest:
        return VerifyResult(VerifyFailure.NOT_DIGEST, f"scheme is {credentials.scheme!r}")
    # The parameters by lower-case name: what credentials.get and its properties read.
    get = credentials._values().get
    for name in ("username", "realm", "nonce", "uri", "response"):
        if get(name) is None:
            return VerifyResult(VerifyFailure.MISSING_PARAM, f"no {name} parameter")
    algorithm, qop = _algorithm_and_qop(get)
    hashing = _algorithm(algorithm)
    if hashing is None:
        return VerifyResult(VerifyFailure.UNSUPPORTED_ALGORITHM, algorithm)
    if qop is None and require_qop:
        return VerifyResult(VerifyFailure.UNSUPPORTED_QOP, "qop is required (no RFC 2069 form)")
    if qop is not None and qop not in _SUPPORTED_QOPS:
        return VerifyResult(VerifyFailure.UNSUPPORTED_QOP, qop)
    needs_cnonce = qop is not None or hashing.session
    if needs_cnonce and get("cnonce") is None:
        return VerifyResult(VerifyFailure.MISSING_PARAM, "no cnonce parameter")
    if qop is not None:
        nc = get("nc")
        if nc is None:
            return VerifyResult(VerifyFailure.MISSING_PARAM, "no nc parameter")
        if not _NC_FORMAT.fullmatch(nc):  # (what credentials.nc refuses)
            return VerifyResult(VerifyFailure.MALFORMED_PARAM, "nc must be 8 hex digits")
    uri = get("uri")
    if expected_uri is not None and uri != expected_uri:
        return VerifyResult(
            VerifyFailure.URI_MISMATCH, f"uri {uri!r} is not {expected_uri!r}"
        )
    if expected_opaque is not None and get("opaque") != expected_opaque:
        return VerifyResult(VerifyFailure.OPAQUE_MISMATCH, "opaque differs from the challenge")
    return algorithm, hashing, qop


def _algorithm_and_qop(get: Callable[[str], str | None]) -> tuple[str, str | None]:
    """The algorithm credentials name (``MD5`` when absent, RFC 2617 §3.2.2) and their qop,
    lower-cased, or None for the RFC 2069 form; ``get`` reads a parameter by lower-case name."""
    qop = get("qop")
    return get("algorithm") or "MD5", qop.lower() if qop is not None else None


class NonceCountTracker:
    """Highest nonce count seen per nonce, in bounded memory (least recently used evicted).

    A nonce evicted early would accept its counts again; sizing ``max_nonces`` above the
    number of nonces issued within one nonce lifetime closes that window.
    """

    def __init__(self, max_nonces: int = 10_000) -> None:
        if max_nonces < 1:
            raise ValueError("max_nonces must be at least 1")
        self.max_nonces = max_nonces
        self._highest: OrderedDict[str, int] = OrderedDict()

    def accept(self, nonce: str, nc: int) -> bool:
        """Record ``nc`` for ``nonce``; False if it is not above every count seen before."""
        highest = self._highest.get(nonce)
        if highest is not None and nc <= highest:
            return False
        self._highest[nonce] = nc
        self._highest.move_to_end(nonce)
        while len(self._highest) > self.max_nonces:
            self._highest.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._highest)


# --------------------------------------------------------------------------------------------
# Client side (siptwin's own test clients)
# --------------------------------------------------------------------------------------------


def answer_challenge(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> Credentials:
    """Credentials answering ``challenge``: qop=auth when offered (auth-int only when it is the
    sole option), the challenge's algorithm (MD5 when absent), its opaque echoed."""
    if not challenge.is_digest:
        raise DigestError(f"cannot answer a {challenge.scheme!r} challenge")
    realm, nonce = challenge.realm, challenge.nonce
    if realm is None or nonce is None:
        raise DigestError("challenge lacks realm or nonce")
    algorithm = challenge.algorithm
    _require_algorithm(algorithm)
    qop = _choose_qop(challenge.qop_options)
    uses_cnonce = qop is not None or algorithm.lower().endswith("-sess")
    cnonce_value = (cnonce or secrets.token_hex(8)) if uses_cnonce else None
    nc_text = f"{nc:08x}" if qop is not None else None
    ha1 = compute_ha1(username, realm, password, algorithm)
    response = compute_response(
        ha1, method, uri, nonce,
        algorithm=algorithm, qop=qop, nc=nc_text, cnonce=cnonce_value, body=body,
    )  # fmt: skip
    params: list[tuple[str, str]] = [
        ("username", username),
        ("realm", realm),
        ("nonce", nonce),
        ("uri", uri),
        ("response", response),
    ]
    if "algorithm" in challenge:
        params.append(("algorithm", algorithm))
    if cnonce_value is not None:
        params.append(("cnonce", cnonce_value))
    if challenge.opaque is not None:
        params.append(("opaque", challenge.opaque))
    if qop is not None and nc_text is not None:
        params += [("qop", qop), ("nc", nc_text)]
    return Credentials(scheme="Digest", params=tuple(params))


def _choose_qop(options: tuple[str, ...]) -> str | None:
    if not options:
        return None  # RFC 2069 challenge: answer without qop
    for preferred in ("auth", "auth-int"):
        if preferred in options:
            return preferred
    raise DigestError(f"no supported qop among {', '.join(options)}")
