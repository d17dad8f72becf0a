"""What the rules read: one call's messages (parsed once) and the configuration around it.

:class:`CallFacts` wraps a :class:`~siptwin.model.calls.Call` - its trace in both
directions, notes, alerts and webhook exchanges - with the domain snapshot the node used and
the control plane's read-only view for questions the snapshot cannot answer: which ACL *elsewhere* (another region, not mapped) contains an address, where a
username does exist, whether a domain lives in another region.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..cloud.view import ControlPlaneView, DomainSnapshot
from ..model.calls import Call, TraceEntry
from ..model.codes import CallStatus
from ..regions.catalogue import Catalogue
from ..sip.digest import Credentials, parse_credentials
from ..sip.errors import SipParseError
from ..sip.message import Request, Response, parse_datagram, parse_stream_message
from ..sip.uri import SipUri, parse_uri

# Addresses a host on the Internet cannot reach. Loopback is deliberately absent: the twin
# runs on 127/8, where every peer's own address is loopback and nothing is "private".
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "fc00::/7", "fe80::/10"))


def private_address(text: str | None) -> bool:
    """RFC 1918, CGNAT (RFC 6598), link-local or ULA; never loopback, never a host name."""
    if not text:
        return False
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return any(address in net for net in PRIVATE_NETWORKS)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass
class Msg:
    """One traced message, parsed (``parsed`` is None when it did not parse)."""

    index: int
    entry: TraceEntry
    parsed: Request | Response | None

    @property
    def direction(self) -> str:
        return self.entry.direction

    @property
    def first_line(self) -> str:
        return self.entry.first_line

    @property
    def is_request(self) -> bool:
        return isinstance(self.parsed, Request)

    @property
    def method(self) -> str | None:
        """The request method, or for a response the method of its CSeq."""
        if isinstance(self.parsed, Request):
            return self.parsed.method
        if isinstance(self.parsed, Response):
            with contextlib.suppress(SipParseError, ValueError):
                return self.parsed.cseq.method
        return None

    @property
    def status(self) -> int | None:
        return self.parsed.status if isinstance(self.parsed, Response) else None

    def header(self, name: str) -> str | None:
        return self.parsed.headers.get(name) if self.parsed is not None else None

    def header_line(self, name: str) -> str | None:
        """``Name: value`` exactly as written in the message."""
        if self.parsed is None:
            return None
        key = self.parsed.headers.key(name)
        for written, value in self.parsed.headers:
            if self.parsed.headers.key(written) == key:
                return f"{written}: {value}"
        return None

    def credentials(self) -> Credentials | None:
        """The digest credentials of a request (Proxy-Authorization, else Authorization)."""
        for name in ("Proxy-Authorization", "Authorization"):
            value = self.header(name)
            if value:
                with contextlib.suppress(SipParseError, ValueError):
                    cred = parse_credentials(value)
                    if cred.is_digest:
                        return cred
        return None

    def credentials_line(self) -> str | None:
        return self.header_line("Proxy-Authorization") or self.header_line("Authorization")


def parse_entry(entry: TraceEntry) -> Request | Response | None:
    try:
        if entry.transport == "udp":
            return parse_datagram(entry.data)
        return parse_stream_message(entry.data)
    except (SipParseError, ValueError):
        with contextlib.suppress(SipParseError, ValueError):
            return parse_datagram(entry.data)
    return None


@dataclass
class CallFacts:
    call: Call
    catalogue: Catalogue | None = None
    domain: DomainSnapshot | None = None
    config: ControlPlaneView | None = None  # the configuration around the call
    fidelity: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.fidelity:
            self.fidelity = dict(self.call.fidelity or {})

    @cached_property
    def messages(self) -> list[Msg]:
        return [Msg(i, entry, parse_entry(entry)) for i, entry in enumerate(list(self.call.trace))]

    def incoming(self, method: str | None = None) -> list[Msg]:
        return [m for m in self.messages if m.direction == "in" and m.is_request
                and (method is None or m.method == method)]

    def outgoing_responses(self, method: str | None = None) -> list[Msg]:
        return [m for m in self.messages if m.direction == "out" and m.status is not None
                and (method is None or m.method == method)]

    @cached_property
    def initial_requests(self) -> list[Msg]:
        """The dialog-creating INVITEs (or REGISTERs) the caller sent, retransmissions removed."""
        method = self.method
        seen: set[bytes] = set()
        out = []
        for m in self.incoming(method):
            if m.parsed is None or (method == "INVITE" and m.parsed.to.tag is not None):
                continue
            if m.entry.data in seen:
                continue
            seen.add(m.entry.data)
            out.append(m)
        return out

    @property
    def method(self) -> str:
        return getattr(self.call, "method", "INVITE") or "INVITE"

    @property
    def first_request(self) -> Msg | None:
        requests = self.initial_requests
        return requests[0] if requests else None

    @property
    def last_request(self) -> Msg | None:
        requests = self.initial_requests
        return requests[-1] if requests else None

    @cached_property
    def request_uri(self) -> str:
        last = self.last_request
        if last is not None and isinstance(last.parsed, Request):
            return last.parsed.uri_text
        return self.call.request_uri

    @cached_property
    def request_host(self) -> str | None:
        try:
            uri = parse_uri(self.request_uri)
        except SipParseError:
            return None
        return uri.host if isinstance(uri, SipUri) else None

    def final_responses(self) -> list[Msg]:
        return [m for m in self.outgoing_responses(self.method) if (m.status or 0) >= 200]

    def alert_codes(self) -> list[int]:
        return [a.code for a in self.call.alerts]

    def note(self, prefix: str) -> str | None:
        return next((n for n in self.call.notes if n.startswith(prefix)), None)

    @property
    def failed(self) -> bool:
        """The call (or registration) did not succeed: rejected, dropped or torn down."""
        c = self.call
        if c.status in (CallStatus.REJECTED, CallStatus.DROPPED, CallStatus.CHALLENGED,
                        CallStatus.FAILED):
            return True
        return c.final_status is not None and c.final_status >= 300

    @property
    def source(self) -> str:
        return f"{self.call.source_ip}:{self.call.source_port} ({self.call.transport})"
