"""How Twilio presents a SIP-domain call to the customer's app (spec §5.2, §4.6).

:class:`WebhookParams` is the set of parameters every request about the call carries - the
voice URL, its fallback, ``<Redirect>`` and action URLs, status callbacks. :func:`plain_uri`
and :func:`sip_header_params` are the rules for From/To and for the X- headers that pass
(with the ones a cap left out, so the caller can note why); the REST API and diagnostics show
calls the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..sip.errors import SipParseError
from ..sip.frozen import quicken
from ..sip.message import Request
from ..sip.uri import SipUri, parse_uri

API_VERSION = "2010-04-01"
USER_TO_USER = "User-to-User"
_USER_TO_USER_KEY = USER_TO_USER.lower()


@functools.lru_cache(maxsize=1024)  # a PBX's calls repeat their From and To URIs
def plain_uri(text: str) -> str:
    """``sip:user@host[:port]`` without display name, tag, URI parameters or headers.

    Observed webhook values are plain (``sip:alice@203.0.113.7``); ``;transport=tls`` and
    ``;user=phone`` never appear in them (spec §5.2).
    """
    try:
        uri = parse_uri(text)
    except SipParseError:
        return text.split(";", 1)[0]
    if not isinstance(uri, SipUri):
        return text.split(";", 1)[0]
    user = f"{uri.user}@" if uri.user is not None else ""
    return f"{uri.scheme}:{user}{uri.host_port}"


@dataclass
class SipHeaderSelection:
    params: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # names left out by the total cap


def sip_header_params(headers: Iterable[tuple[str, str]], repeated: str = "first", total_cap: int = 0,
                      prefix: str = "SipHeader_") -> SipHeaderSelection:
    """``SipHeader_<Name>`` for every X- header and User-to-User; nothing else passes.

    ``repeated`` chooses what a header given twice becomes (first, last, or the values joined
    with a comma, as RFC 3261 §7.3 allows); ``total_cap`` bounds the characters of names plus
    values (0: no cap). Name case is kept as the PBX wrote it.
    """
    values: dict[str, list[str]] = {}
    names: dict[str, str] = {}  # lower-case -> the spelling of the first occurrence
    for name, value in headers:
        key = name.lower()
        if not (key.startswith("x-") or key == _USER_TO_USER_KEY):
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value)
    selection = SipHeaderSelection()
    used = 0
    for key, found in values.items():
        if repeated == "last":
            value = found[-1]
        elif repeated == "join":
            value = ",".join(found)
        else:
            value = found[0]
        name = names[key]
        if total_cap and used + len(name) + len(value) > total_cap:
            selection.dropped.append(name)
            continue
        used += len(name) + len(value)
        selection.params.append((prefix + name, value))
    return selection


@dataclass(frozen=True)
class WebhookParams:
    """What Twilio says about the call in every request; fixed when the call is accepted."""

    account_sid: str
    call_sid: str
    from_: str
    to: str
    sip_domain: str
    sip_domain_sid: str
    sip_call_id: str
    sip_source_ip: str
    sip_username: str | None
    sip_headers: tuple[tuple[str, str], ...]

    def parameters(self, call_status: str) -> list[tuple[str, str]]:
        pairs = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", self.call_sid),
            ("CallStatus", call_status),
            ("Called", self.to),
            ("Caller", self.from_),
            ("Direction", "inbound"),
            ("From", self.from_),
            ("SipCallId", self.sip_call_id),
            ("SipDomain", self.sip_domain),
            ("SipDomainSid", self.sip_domain_sid),
            ("SipSourceIp", self.sip_source_ip),
            ("To", self.to),
        ]
        if self.sip_username is not None:  # only after digest authentication (spec §4.3)
            pairs.append(("SipUsername", self.sip_username))
        return pairs + list(self.sip_headers)


quicken(WebhookParams)  # one per call


def to_from_request_uri(invite: Request, mode: str = "request-uri") -> str:
    """``To``/``Called`` under the ``to_parameter`` setting (spec §5.2, unconfirmed): by
    default ``sip:<Request-URI user>@<Request-URI host as received>``, parameters removed;
    ``to-header`` takes the To header's URI, ``request-uri-verbatim`` keeps the parameters."""
    if mode == "request-uri-verbatim":
        return invite.uri_text
    if mode == "to-header":
        try:
            return plain_uri(str(invite.to.uri))
        except (SipParseError, ValueError):
            pass
    return plain_uri(invite.uri_text)
