"""URIs used in SIP (RFC 3261 §19, RFC 3966 for tel).

``sip`` and ``sips`` URIs are decomposed; ``tel`` keeps its number and parameters; any other
scheme is kept opaque (so the element can answer 416 instead of failing to parse). Escapes are
decoded exactly once, into the fields; ``str()`` re-escapes what must be escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import SipParseError
from .frozen import quicken
from .syntax import DecodeMemo, escape, unescape

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?\.?\Z|[A-Za-z0-9]\Z")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")
_IPV6_REF = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
# Characters allowed unescaped in each part (beyond alphanumerics), RFC 3261 §25.1.
_USER_CHARS = "-_.!~*'()&=+$,;?/"
_PASSWORD_CHARS = "-_.!~*'()&=+$,"
_PARAM_CHARS = "-_.!~*'()[]/:&+$"
_HEADER_CHARS = "-_.!~*'()[]/?:+$"
# Never in a URI of any scheme (whitespace, the brackets and quotes around it in a header).
_NOT_IN_URIS = re.compile(r"[ \t\r\n<>\"]")
_URI_PART = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/:%\[\]@]*\Z")

DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
# Parameters that must match when either URI has them (§19.1.4).
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


@dataclass(frozen=True, slots=True)
class SipUri:
    scheme: str  # "sip" or "sips", lower-case
    host: str  # as written; IPv6 references keep their brackets
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    # The text, once written: a decoded URI is shared (see parse_uri) and the call records,
    # the webhooks and the dialog write the same few again and again.
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.params:
            if k.lower() == lname:
                return v
        return None

    def has_param(self, name: str) -> bool:
        lname = name.lower()
        return any(k.lower() == lname for k, _ in self.params)

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    def __str__(self) -> str:
        # getattr: a mypyc-compiled class leaves an init=False field unset despite its default
        text: str | None = getattr(self, "_text", None)
        if text is None:
            text = self._write()
            object.__setattr__(self, "_text", text)
        return text

    def _write(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(escape(self.user, _USER_CHARS))
            if self.password is not None:
                out.append(":" + escape(self.password, _PASSWORD_CHARS))
            out.append("@")
        out.append(self.host_port)
        for k, v in self.params:
            out.append(";" + escape(k, _PARAM_CHARS))
            if v is not None:
                out.append("=" + escape(v, _PARAM_CHARS))
        if self.headers:
            out.append("?")
            out.append(
                "&".join(
                    f"{escape(k, _HEADER_CHARS)}={escape(v, _HEADER_CHARS)}"
                    for k, v in self.headers
                )
            )
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TelUri:
    number: str
    params: tuple[tuple[str, str | None], ...] = ()
    scheme: str = field(default="tel", init=False)

    def __str__(self) -> str:
        return "tel:" + self.number + "".join(
            f";{k}" if v is None else f";{k}={v}" for k, v in self.params
        )


@dataclass(frozen=True, slots=True)
class OpaqueUri:
    """A URI of a scheme siptwin does not interpret (http, isbn, soap.beep, ...)."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


for _cls in (SipUri, TelUri, OpaqueUri):
    quicken(_cls)

Uri = SipUri | TelUri | OpaqueUri


def parse_uri(text: str) -> Uri:
    return _DECODED[text]  # see DecodeMemo: decoded once per distinct text


def _parse_uri(text: str) -> Uri:
    m = _SCHEME.match(text)
    if m is None:
        raise SipParseError(f"Malformed URI {text[:60]!r}")
    scheme = m.group(1).lower()
    rest = text[m.end() :]
    if not rest or _NOT_IN_URIS.search(rest):
        raise SipParseError(f"Malformed {scheme} URI {text[:60]!r}")
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        number, _, param_text = rest.partition(";")
        return TelUri(number, _split_uri_params(param_text) if param_text else ())
    return OpaqueUri(scheme, rest)


_DECODED: DecodeMemo = DecodeMemo(_parse_uri)
# parse_uri as a mapping, for the hot callers that spare the call: URIS[text]
URIS = _DECODED


# The usual sip URI - "user@host:port;name=value;name", with no escape, password, header
# or IPv6 reference - in one match; anything else takes the general path, which gives the
# same URI for these (a caller's From and Contact carry a new port on every call).
_URI_PARAM_CHARS = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+"
_PLAIN_SIP = re.compile(
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?([A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?)"
    rf"(?::([0-9]{{1,5}}))?((?:;{_URI_PARAM_CHARS}(?:={_URI_PARAM_CHARS})?)*)\Z")


def _parse_sip(scheme: str, rest: str) -> SipUri:
    plain = _PLAIN_SIP.match(rest)
    if plain is not None:
        user, host, port_text, param_text = plain.groups()
        port = None if port_text is None else int(port_text)
        if port is None or port <= 65535:
            params = tuple([(name, value if equals else None) for name, equals, value
                            in [item.partition("=") for item in param_text[1:].split(";")]]
                           ) if param_text else ()
            return SipUri(scheme, host, user, None, port, params, ())
    return _read_sip(scheme, rest)


def _read_sip(scheme: str, rest: str) -> SipUri:
    """Any sip or sips URI after its scheme (RFC 3261 §19.1.1): what _parse_sip gives."""
    if not _URI_PART.match(rest):
        raise SipParseError(f"Illegal character in {scheme} URI")
    user = password = None
    # Parameters and headers never contain an unescaped '@', so the last '@' ends userinfo
    # (the user part itself may contain '?', ';' and ',').
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        raw_user, colon, raw_password = userinfo.partition(":")
        if not raw_user:
            raise SipParseError(f"Empty user part in {scheme} URI")
        user = unescape(raw_user)
        password = unescape(raw_password) if colon else None
    hostport, qmark, header_text = rest.partition("?")
    hostport, _, param_text = hostport.partition(";")
    host, port = _split_host_port(hostport)
    params = _split_uri_params(param_text) if param_text else ()
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        pairs = []
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise SipParseError("Malformed header in URI")
            pairs.append((unescape(name), unescape(value)))
        headers = tuple(pairs)
    return SipUri(scheme, host, user, password, port, params, headers)


def _split_host_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError("Unterminated IPv6 reference in URI")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if not _IPV6_REF.match(host):
            raise SipParseError("Malformed IPv6 reference in URI")
        if tail and not tail.startswith(":"):
            raise SipParseError("Malformed host in URI")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
        if not host or not _HOSTNAME.match(host):
            raise SipParseError(f"Malformed host {host!r} in URI")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            raise SipParseError("Malformed port in URI")
        port = int(port_text)
    return host, port


def _split_uri_params(text: str) -> tuple[tuple[str, str | None], ...]:
    params = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise SipParseError("Empty URI parameter")
        params.append((unescape(name), unescape(value) if eq else None))
    return tuple(params)


_HOST_KEYS: dict[str, str] = {}  # one string per host: transaction keys keep it for 64*T1
HOST_KEYS = _HOST_KEYS


def host_key(host: str) -> str:
    """Host comparison key: case-insensitive, IPv6 references normalised (the keys made
    so far are HOST_KEYS, by host, for callers that try them first)."""
    key = _HOST_KEYS.get(host)
    if key is None:
        if len(_HOST_KEYS) >= 4096:
            _HOST_KEYS.clear()
        key = _HOST_KEYS[host] = _host_key(host)
    return key


def _host_key(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        import ipaddress

        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            return host
    return host


def uri_equivalent(a: Uri, b: Uri) -> bool:
    """URI comparison of RFC 3261 §19.1.4 for sip/sips; exact text comparison otherwise."""
    if not isinstance(a, SipUri) or not isinstance(b, SipUri):
        if isinstance(a, TelUri) and isinstance(b, TelUri):
            return a.number == b.number and _param_map(a.params) == _param_map(b.params)
        return str(a).lower() == str(b).lower() if a.scheme == b.scheme else False
    if a.scheme != b.scheme or a.user != b.user or a.password != b.password:
        return False
    if host_key(a.host) != host_key(b.host) or a.port != b.port:
        return False
    pa, pb = _param_map(a.params), _param_map(b.params)
    for name in _STRICT_PARAMS:
        if (name in pa or name in pb) and pa.get(name) != pb.get(name):
            return False
    for name in pa.keys() & pb.keys():
        if pa[name] != pb[name]:
            return False
    ha = {k.lower(): v for k, v in a.headers}
    hb = {k.lower(): v for k, v in b.headers}
    return ha == hb


def _param_map(params: tuple[tuple[str, str | None], ...]) -> dict[str, str | None]:
    return {k.lower(): (v.lower() if v is not None else None) for k, v in params}
