"""The inbound INVITE pipeline of a Twilio SIP Domain, in the spec's order (spec §4.2).

Each stage is named after the rule it enforces and looks at one :class:`InviteContext`. It
either lets the call go on (returns None) or decides it with a :class:`Verdict`: a final
response carrying ``X-Twilio-Error: <code> <text>``, or silence. The order of the checks is
visible in one place: :data:`STAGES`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from ..cloud.view import ControlPlaneView, CredentialSnapshot, DomainSnapshot
from ..settings import Fidelity
from ..sip.digest import (
    Credentials,
    NonceCountTracker,
    NonceIssuer,
    NonceStatus,
    make_challenge,
    nonce_context,
    verify,
)
from ..sip.errors import SipParseError
from ..sip.message import Request
from ..sip.sdp import SdpError, refuse_offer, summarize_offer
from ..sip.uri import SipUri
from .catalogue import Catalogue, HostMatch, Region

REALM = "sip.twilio.com"


@dataclass(frozen=True)
class TwilioError:
    code: int
    message: str

    def header(self) -> str:
        return f"{self.code} {self.message}"


# Call-time errors a region node reports (spec §7), each in one place.
TOO_MANY_HOPS = TwilioError(32006, "Too many hops")
DOMAIN_NOT_FOUND = TwilioError(32002, "Twilio SIP Domain not found")
NO_AUTH_MAPPED = TwilioError(32200, "Insufficient permissions: no authentication is mapped to the domain")
NOT_TLS = TwilioError(32209, "Secure domain but non-TLS transport")
IP_NOT_IN_ACL = TwilioError(32201, "Authentication failure - source IP Address not in ACL")
BAD_CREDENTIALS = TwilioError(32202, "Bad user credentials")
BAD_SDP = TwilioError(32102, "Bad SDP")
SRTP_NOT_SECURE = TwilioError(32207, "SRTP offered but domain not secure")
RTP_ON_SECURE = TwilioError(32208, "Secure domain but RTP offered")
NO_COMMON_CODEC = TwilioError(32102, "No PCMU or PCMA in the SDP offer")


@dataclass(frozen=True)
class Verdict:
    """How a stage decided the call: a final response, or ``status=None`` for silence."""

    stage: str
    status: int | None
    reason: str = ""
    error: TwilioError | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def silent(self) -> bool:
        return self.status is None


@dataclass
class DigestState:
    """Nonce issuing and replay tracking shared by the nodes of one twin."""

    issuer: NonceIssuer
    counts: NonceCountTracker = field(default_factory=NonceCountTracker)
    opaque: str = ""
    # Worker processes (`siptwin up --workers N`) each track nonce counts on their own; the
    # kernel sends one source address and port to one worker, so binding nonces to the port
    # as well keeps a replay from reaching a worker that never saw the nonce.
    bind_source_port: bool = False
    # The process issuing nonces, with workers (the parent is 0): part of every nonce, so a
    # nonce answered on one process and replayed to another - over TCP from the same address
    # and port the kernel may pick a different worker than over UDP - fails there and gets a
    # fresh challenge; nonce counts need no sharing between processes.
    worker: int | None = None


@dataclass
class InviteContext:
    request: Request
    transport: str  # udp, tcp, tls
    source_ip: str
    source_port: int
    region: Region
    catalogue: Catalogue
    control: ControlPlaneView
    fidelity: Fidelity
    digest: DigestState
    now: float
    # Filled in by the stages:
    host: HostMatch | None = None
    domain: DomainSnapshot | None = None
    username: str | None = None
    credentials: Credentials | None = None
    offer_summary: object | None = None
    notes: list[str] = field(default_factory=list)


Stage = Callable[[InviteContext], Verdict | None]


def max_forwards_not_exhausted(ctx: InviteContext) -> Verdict | None:
    if ctx.request.max_forwards == 0:
        return Verdict("max_forwards_not_exhausted", 483, "Too Many Hops", TOO_MANY_HOPS)
    return None


def domain_exists(ctx: InviteContext) -> Verdict | None:
    uri = ctx.request.uri
    host = ctx.catalogue.match_host(uri.host) if isinstance(uri, SipUri) else None
    if host is not None and host.edge_label is not None and host.region is None:
        ctx.notes.append(f"unknown edge label {host.edge_label!r} in the Request-URI host")
        host = None
    domain = ctx.control.find_domain(host.domain_name) if host is not None else None
    if domain is None:
        status = ctx.fidelity.unknown_domain_status
        return Verdict("domain_exists", status, "Not Found", DOMAIN_NOT_FOUND)
    ctx.host, ctx.domain = host, domain
    return None


def call_authentication_mapped(ctx: InviteContext) -> Verdict | None:
    assert ctx.domain is not None
    if not ctx.domain.has_call_authentication:
        return Verdict("call_authentication_mapped", ctx.fidelity.no_auth_status, "Forbidden",
                       NO_AUTH_MAPPED)
    return None


def secure_domain_uses_tls(ctx: InviteContext) -> Verdict | None:
    assert ctx.domain is not None
    if ctx.domain.secure and ctx.transport != "tls":
        return Verdict("secure_domain_uses_tls", ctx.fidelity.secure_transport_status,
                       "Forbidden", NOT_TLS)
    return None


def source_ip_in_acl(ctx: InviteContext) -> Verdict | None:
    """The packet's source address, never Via or Contact, must be in a mapped IP ACL."""
    assert ctx.domain is not None
    if not ctx.domain.call_acls:
        return None
    try:
        address = ipaddress.ip_address(ctx.source_ip)
    except ValueError:
        address = None
    if address is not None and any(address in net for net in ctx.domain.call_acl_networks):
        return None
    if ctx.fidelity.acl_miss == "drop":
        return Verdict("source_ip_in_acl", None, "dropped: source IP not in ACL", IP_NOT_IN_ACL)
    return Verdict("source_ip_in_acl", 403, "Forbidden", IP_NOT_IN_ACL)


def digest_credentials_valid(ctx: InviteContext) -> Verdict | None:
    domain = ctx.domain
    assert domain is not None
    if not domain.call_credential_lists:
        return None
    return check_digest(ctx, "INVITE", domain.call_credentials, "digest_credentials_valid")


def check_digest(
    ctx: InviteContext, method: str, credentials: dict[str, CredentialSnapshot] | object,
    stage: str,
) -> Verdict | None:
    request = ctx.request
    bound = [request.call_id, ctx.source_ip]
    if ctx.digest.bind_source_port:
        bound.append(str(ctx.source_port))
    if ctx.digest.worker is not None:
        bound.append(f"worker {ctx.digest.worker}")
    context = nonce_context(*bound)
    offered = _credentials_for_realm(request)
    if offered is None:
        return _challenge(ctx, stage, context, stale=False)
    status = ctx.digest.issuer.check(offered.nonce or "", ctx.now, REALM, context)
    if status is NonceStatus.INVALID:
        ctx.notes.append("nonce not issued by this twin for this Call-ID and source")
        return _challenge(ctx, stage, context, stale=False)
    stored = credentials.get(offered.username or "")  # type: ignore[attr-defined]
    if stored is None:
        ctx.notes.append(f"unknown username {offered.username!r}")
        return _forbidden(ctx, stage)
    ha1 = stored.ha1_sha256 if offered.algorithm.upper().startswith("SHA-256") else stored.ha1_md5
    expected_uri = request.uri_text if ctx.fidelity.digest_uri_check == "strict" else None
    result = verify(offered, method, ha1, request.body, expected_uri)
    if not result.ok:
        ctx.notes.append(f"digest verification failed: {result.reason} {result.detail}".strip())
        return _forbidden(ctx, stage)
    if status is NonceStatus.STALE:
        return _challenge(ctx, stage, context, stale=True)
    nc = offered.nc if offered.nc is not None else 0
    if not ctx.digest.counts.accept(offered.nonce or "", nc):
        ctx.notes.append("nonce count replayed")
        return _forbidden(ctx, stage)
    ctx.username, ctx.credentials = offered.username, offered
    return None


def _credentials_for_realm(request: Request) -> Credentials | None:
    try:
        offered = request.credentials("Proxy-Authorization") or request.credentials("Authorization")
    except (SipParseError, ValueError):
        return None
    digest = [c for c in offered if c.is_digest]
    for cred in digest:
        if (cred.realm or "").lower() == REALM:
            return cred
    return digest[0] if digest else None


def _challenge(ctx: InviteContext, stage: str, context: bytes, stale: bool) -> Verdict:
    nonce = ctx.digest.issuer.issue(ctx.now, REALM, context)
    challenge = make_challenge(REALM, nonce, ctx.digest.opaque, stale=stale)
    # Twilio's edge challenges REGISTER with 407 too, not 401 (spec §4.8, observed).
    return Verdict(stage, 407, "Proxy Authentication Required", None,
                   (("Proxy-Authenticate", challenge.to_header()),))


def _forbidden(ctx: InviteContext, stage: str) -> Verdict:
    return Verdict(stage, ctx.fidelity.bad_credentials_status, "Forbidden", BAD_CREDENTIALS)


def media_offer_acceptable(ctx: InviteContext) -> Verdict | None:
    domain = ctx.domain
    assert domain is not None
    body = ctx.request.body
    if not body:
        return None  # a late offer: the 200 OK will carry ours
    status = ctx.fidelity.media_mismatch_status
    try:
        offer = ctx.request.sdp
    except SdpError as err:
        ctx.notes.append(str(err))
        return Verdict("media_offer_acceptable", status, "Not Acceptable Here", BAD_SDP)
    summary = summarize_offer(offer)
    ctx.offer_summary = summary
    if summary.srtp_offered and not domain.secure:
        return Verdict("media_offer_acceptable", status, "Not Acceptable Here", SRTP_NOT_SECURE)
    if domain.secure and not summary.srtp_offered:
        return Verdict("media_offer_acceptable", status, "Not Acceptable Here", RTP_ON_SECURE)
    refused = refuse_offer(offer)
    if refused is not None:
        ctx.notes.append(refused.reason)
        return Verdict("media_offer_acceptable", status, "Not Acceptable Here", NO_COMMON_CODEC)
    return None


# The order of spec §4.2. 100 Trying goes out before the first stage in the ``observed``
# profile and right after ``source_ip_in_acl`` in ``seed`` (an unlisted address hears nothing).
STAGES: tuple[Stage, ...] = (
    max_forwards_not_exhausted,
    domain_exists,
    call_authentication_mapped,
    secure_domain_uses_tls,
    source_ip_in_acl,
    digest_credentials_valid,
    media_offer_acceptable,
)
TRYING_AFTER = "source_ip_in_acl"


def run_pipeline(ctx: InviteContext, send_trying: Callable[[], None]) -> Verdict | None:
    """Run the stages in order; None means the call is accepted."""
    if ctx.fidelity.trying_before_acl:
        send_trying()
    for stage in STAGES:
        verdict = stage(ctx)
        if verdict is not None:
            return verdict
        if stage.__name__ == TRYING_AFTER and not ctx.fidelity.trying_before_acl:
            send_trying()
    return None
