"""Lexical building blocks of the SIP grammar (RFC 3261 §25).

Everything here works on already unfolded header text (str). Octets that are not valid UTF-8
arrive as surrogate escapes, so nothing is lost and serialising gives the same bytes back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import SipParseError

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_TOKEN_FULL = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_HEX_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
LWS = " \t"


def is_token(text: str) -> bool:
    return _TOKEN_FULL.match(text) is not None


def unescape(text: str) -> str:
    """Decode %HH escapes exactly once; a '%' not followed by two hex digits stays as is."""
    if "%" not in text:
        return text
    raw = _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    # %HH sequences encode octets; re-read them as UTF-8 where they form valid sequences.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def escape(text: str, allowed: str) -> str:
    """Escape every character of ``text`` that is not alphanumeric or in ``allowed``."""
    out = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch in allowed):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted-string opening at ``text[start]``; return (unescaped content, end index).

    The end index points just past the closing quote.
    """
    close = text.find('"', start + 1)
    if close >= 0 and text.find("\\", start + 1, close) < 0:
        return text[start + 1 : close], close + 1  # nothing escaped: the loop's result
    return _read_escaped(text, start)


def _read_escaped(text: str, start: int) -> tuple[str, int]:
    """read_quoted for a quoted-string holding escapes (or unterminated), character by
    character."""
    out = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError("Unterminated quoted string")


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_commas(text: str) -> list[str]:
    """Split a header value at top-level commas: not inside quotes or angle brackets.

    Empty elements are kept (as "") so callers can reject them where the grammar forbids them.
    """
    if "," not in text:
        return [text.strip(LWS)]
    parts: list[str] = []
    depth = 0
    i = 0
    begin = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            _, i = read_quoted(text, i)
            continue
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[begin:i].strip(LWS))
            begin = i + 1
        i += 1
    parts.append(text[begin:].strip(LWS))
    return parts


Params = tuple[tuple[str, str | None], ...]


def parse_params(text: str, what: str) -> Params:
    """Parse ``;name[=value]`` generic parameters of a header (LWS allowed around ; and =).

    Values may be tokens, host names or quoted strings (returned with their quotes, so that a
    quoted and an unquoted value stay distinguishable). ``what`` names the header for errors.
    """
    if not text:
        return ()
    if _PLAIN_PARAMS.match(text):  # ";a=b;c" with nothing to unquote or skip: one regex
        return tuple((m[1], m[2]) for m in _ONE_PLAIN_PARAM.finditer(text))
    params: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in LWS:
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise SipParseError(f"Unexpected character {text[i]!r} in {what} parameters")
        i += 1
        while i < n and text[i] in LWS:
            i += 1
        m = TOKEN_RE.match(text, i)
        if m is None:
            raise SipParseError(f"Empty parameter in {what}")
        name = m.group(0)
        i = m.end()
        while i < n and text[i] in LWS:
            i += 1
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in LWS:
                i += 1
            if i < n and text[i] == '"':
                begin = i
                _, i = read_quoted(text, i)
                value = text[begin:i]
            else:
                begin = i
                while i < n and text[i] not in "; \t,":
                    i += 1
                value = text[begin:i]
                if not value:
                    raise SipParseError(f"Parameter {name} without a value in {what}")
                if value.startswith("[") or _PARAM_VALUE.match(value):
                    pass
                else:
                    raise SipParseError(f"Bad value for parameter {name} in {what}")
        params.append((name, value))
    return tuple(params)


# gen-value = token / host / quoted-string; hosts add ':' and '[]' for IPv6 references.
_PARAM_VALUE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+\Z")
# The usual case - no whitespace, no quotes - in one match; anything else takes the loop,
# which gives the same result for these and names what is wrong with the others.
_ONE_PLAIN_PARAM = re.compile(r";([A-Za-z0-9\-.!%*_+`'~]+)(?:=([A-Za-z0-9\-.!%*_+`'~:\[\]]+))?")
_PLAIN_PARAMS = re.compile(r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)+\Z")


def params_text(params: Params) -> str:
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params])


def param_lookup(params: Params, lname: str) -> str | None:
    """Value of parameter ``lname`` (given in lower case, matched case-insensitively),
    unquoted; None when absent or valueless. (The callers name a parameter in lower case:
    no folding of the name on each of the dozen look-ups a call makes.)"""
    for k, v in params:
        if k == lname or k.lower() == lname:  # (most are written in lower case already)
            if v is not None and v[:1] == '"':
                return read_quoted(v, 0)[0]
            return v
    return None


def has_param(params: Params, lname: str) -> bool:
    """Whether parameter ``lname`` (in lower case, as for param_lookup) is present."""
    # A loop, not any() over a generator, which costs more for the two or three parameters.
    for k, _ in params:  # noqa: SIM110
        if k == lname or k.lower() == lname:
            return True
    return False


class DecodeMemo(dict):  # type: ignore[type-arg]
    """Decoded values by the key they were decoded from (``memo[text]``), for decoders whose
    results are immutable and so can be shared: the requests of one call repeat their
    Request-URI, From and To. A decoder's error propagates and is never stored; the memo is
    cleared when full, so a flood of distinct values only costs the decoding it would have
    cost anyway."""

    def __init__(self, decode: Callable[[Any], Any], limit: int = 1024) -> None:
        super().__init__()
        self._decode = decode
        self._limit = limit

    def __missing__(self, key: Any) -> Any:
        value = self._decode(key)
        if len(self) >= self._limit:
            self.clear()
        self[key] = value
        return value
