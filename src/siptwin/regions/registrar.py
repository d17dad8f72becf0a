"""REGISTER for SIP Domains with registration enabled (spec §4.8).

Bindings are shared by every edge of the twin (Twilio stores them in the domain's active
region and any edge reaches them), kept in memory, and expire on their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sip.errors import SipParseError
from ..sip.message import Request, Response
from ..sip.uri import SipUri
from .pipeline import InviteContext, TwilioError, check_digest

if TYPE_CHECKING:
    from ..transport.endpoint import Source
    from .node import RegionNode

REGISTRATION_DISABLED = TwilioError(32210, "Registration not enabled on the SIP Domain")
NO_REGISTRATION_LIST = TwilioError(32212, "No credential list mapped for registrations")
TOO_MANY_BINDINGS = TwilioError(32007, "Too many registrations for this address of record")


@dataclass
class Binding:
    contact: str  # the Contact value as registered (name-addr form)
    expires_at: float
    source: str  # "transport:ip:port"
    username: str


class Registrar:
    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}  # AOR -> contact URI -> binding

    def bindings(self, aor: str, now: float | None = None) -> list[Binding]:
        now = time.time() if now is None else now
        current = self._bindings.get(aor, {})
        for key in [k for k, b in current.items() if b.expires_at <= now]:
            del current[key]
        return list(current.values())

    def handle(self, node: RegionNode, request: Request, source: Source, now: float) -> Response:
        fidelity = node.fidelity
        to_uri = request.to.uri
        host = node.catalogue.match_host(to_uri.host) if isinstance(to_uri, SipUri) else None
        domain = node.control.find_domain(host.domain_name) if host else None
        if domain is None:
            return node._response(request, fidelity.unknown_domain_status, extra=_error(
                TwilioError(32002, "Twilio SIP Domain not found")))
        if not domain.sip_registration:
            return node._response(request, 403, extra=_error(REGISTRATION_DISABLED))
        if not domain.registration_credential_lists:
            return node._response(request, 403, extra=_error(NO_REGISTRATION_LIST))
        ctx = InviteContext(request, source.transport, source.host, source.port, node.region,
                            node.catalogue, node.control, fidelity, node.digest, now)
        verdict = check_digest(ctx, "REGISTER", domain.registration_credentials, "registration")
        if verdict is not None:
            extra = verdict.headers + (_error(verdict.error) if verdict.error else ())
            return node._response(request, verdict.status or 403, verdict.reason, extra=extra)
        assert isinstance(to_uri, SipUri)
        aor = f"sip:{to_uri.user}@{domain.domain_name}"
        return self._update(node, request, source, aor, ctx.username or "", now)

    def _update(self, node: RegionNode, request: Request, source: Source, aor: str,
                username: str, now: float) -> Response:
        fidelity = node.fidelity
        try:
            contacts = request.contacts
            default_expires = request.expires
        except SipParseError as err:
            return node._response(request, 400, err.reason)
        current = {b.contact: b for b in self.bindings(aor, now)}
        if contacts and contacts[0].star:
            if default_expires != 0:
                return node._response(request, 400, "Contact * requires Expires: 0")
            current.clear()
        for contact in contacts:
            if contact.address is None:
                continue
            expires = contact.expires
            if expires is None:
                expires = default_expires if default_expires is not None else 3600
            key = str(contact.address.uri)
            if expires == 0:
                current.pop(key, None)
                continue
            if expires < fidelity.registration_min_expires:
                return node._response(request, 423, extra=(
                    ("Min-Expires", str(fidelity.registration_min_expires)),))
            expires = min(expires, fidelity.registration_max_expires)
            current[key] = Binding(key, now + expires, f"{source.transport}:{source.host}:{source.port}",
                                   username)
        if len(current) > fidelity.registration_max_bindings:
            return node._response(request, 403, extra=_error(TOO_MANY_BINDINGS))
        self._bindings[aor] = current
        listed = tuple(("Contact", f"<{b.contact}>;expires={int(b.expires_at - now)}")
                       for b in current.values())
        return node._response(request, 200, extra=listed)


def _error(error: TwilioError) -> tuple[tuple[str, str], ...]:
    return (("X-Twilio-Error", error.header()),)
