"""name-addr / addr-spec values of From, To, Contact, Route and Record-Route (§20.10, §25.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SipParseError
from .frozen import quicken
from .syntax import (
    LWS,
    DecodeMemo,
    Params,
    is_token,
    param_lookup,
    params_text,
    parse_params,
    quote,
    read_quoted,
)
from .uri import Uri, parse_uri


@dataclass(frozen=True, slots=True)
class NameAddr:
    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        # param_lookup(self.params, "tag"), inlined: a call reads a dozen tags (dialog and
        # ACK matching); tests/sip/test_call_path_shortcuts.py holds the two together
        for k, v in self.params:
            if k == "tag" or k.lower() == "tag":
                return read_quoted(v, 0)[0] if v is not None and v[:1] == '"' else v
        return None

    def param(self, name: str) -> str | None:
        return param_lookup(self.params, name.lower())

    def with_param(self, name: str, value: str | None) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k.lower() != name.lower())
        return NameAddr(self.uri, self.display_name, (*kept, (name, value)))

    def __str__(self) -> str:
        shown = "" if self.display_name is None else _display(self.display_name) + " "
        return f"{shown}<{self.uri}>{params_text(self.params)}"


quicken(NameAddr)


def _display(name: str) -> str:
    words = name.split(" ")
    if name and all(is_token(w) for w in words):
        return name
    return quote(name)


def parse_name_addr(text: str, what: str) -> NameAddr:
    """Parse one name-addr or addr-spec with its header parameters.

    ``what`` names the header in error messages, e.g. "To".
    """
    return _DECODED[(text, what)]  # see DecodeMemo: decoded once per (text, header)


# The usual name-addr without header parameters - '"Name" <URI>' or '<URI>' - in one match
# (the URI read as any other); anything else takes the general grammar, which gives the same
# NameAddr for these.
_PLAIN_NAME_ADDR = re.compile(r'(?:"([^"\\]*)"[ \t]*)?<([^<>" \t]+)>\Z')
# ... and the usual addr-spec without parameters - "sip:user@host:port", a Contact as SIPp
# writes it, new on every call - whole: the general grammar reads the URI up to the first
# ';' or blank, and refuses one holding '?' or ','.
_PLAIN_ADDR_SPEC = re.compile(r'[^<>"; \t,?]+\Z')


def _parse_name_addr(text: str, what: str) -> NameAddr:
    plain = _PLAIN_NAME_ADDR.match(text)
    if plain is not None:
        return NameAddr(parse_uri(plain.group(2)), plain.group(1), ())
    if _PLAIN_ADDR_SPEC.match(text) is not None:
        return NameAddr(parse_uri(text), None, ())
    return _read_name_addr(text, what)


def _read_name_addr(text: str, what: str) -> NameAddr:
    """Any name-addr or addr-spec with header parameters (RFC 3261 §20.10): what
    _parse_name_addr gives."""
    text = text.strip(LWS)
    if not text:
        raise SipParseError(f"Empty {what} header")
    display: str | None = None
    if text[0] == '"':
        display, end = read_quoted(text, 0)
        rest = text[end:].lstrip(LWS)
        if not rest.startswith("<"):
            raise SipParseError(f"Quoted display name without <URI> in {what}")
        return _bracketed(rest, display, what)
    lt = text.find("<")
    if lt >= 0:
        words = text[:lt].strip(LWS)
        if words:
            # RFC 4475 §3.1.1.6: accept a token display name glued to '<'.
            if not all(is_token(w) for w in words.split()):
                raise SipParseError(f"Display name in {what} must be quoted")
            display = " ".join(words.split())
        return _bracketed(text[lt:], display, what)
    # addr-spec: the URI ends at the first ';' or LWS; what follows are header parameters.
    end = len(text)
    for i, ch in enumerate(text):
        if ch in "; \t":
            end = i
            break
    uri_text = text[:end]
    if "?" in uri_text or "," in uri_text:
        raise SipParseError(f"URI in {what} contains '?' or ',' and must be inside <>")
    return NameAddr(parse_uri(uri_text), None, parse_params(text[end:], what))


def _decode_name_addr(key: tuple[str, str]) -> NameAddr:
    """What :func:`_parse_name_addr` gives for ``key`` (text, header name), reading a
    From or To that ends with a plain ``;tag=`` as the same value without its tag - decoded
    once for all the calls of a caller, whose tags differ on every call - and the tag
    appended (the tag is a token: it cannot end a quoted string, a <URI> or an addr-spec
    URI, so the general grammar reads it as one more parameter). Anything else, or a head
    that does not decode, takes the general parse, which gives its value or its error."""
    text, what = key
    head, sep, tag = text.rpartition(";tag=")
    if sep and is_token(tag):
        try:
            untagged = _UNTAGGED[(head, what)]
        except SipParseError:
            pass
        else:
            return NameAddr(untagged.uri, untagged.display_name, (*untagged.params, ("tag", tag)))
    return _parse_name_addr(text, what)


_DECODED: DecodeMemo = DecodeMemo(_decode_name_addr)
# parse_name_addr as a mapping, for the hot callers that spare the call: NAME_ADDRS[(text, what)]
NAME_ADDRS = _DECODED
# the values without their tag (see _decode_name_addr): one or two per caller
_UNTAGGED: DecodeMemo = DecodeMemo(lambda key: _parse_name_addr(*key), limit=256)


def _bracketed(text: str, display: str | None, what: str) -> NameAddr:
    gt = text.find(">")
    if gt < 0:
        raise SipParseError(f"Missing '>' in {what}")
    inner = text[1:gt]
    if inner != inner.strip(LWS):
        raise SipParseError(f"Whitespace inside <> in {what}")
    return NameAddr(parse_uri(inner), display, parse_params(text[gt + 1 :], what))
