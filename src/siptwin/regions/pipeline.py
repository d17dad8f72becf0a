"""The inbound INVITE pipeline of a Twilio SIP Domain, in the spec's order (spec §4.2).

Each stage is named after the rule it enforces and looks at one :class:`InviteContext`. It
either lets the call go on (returns None) or decides it with a :class:`Verdict`: a final
response carrying ``X-Twilio-Error: <code> <text>``, or silence. The order of the checks is
visible in one place: :data:`STAGES`.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from ..cloud.view import ControlPlaneView, CredentialSnapshot, DomainSnapshot
from ..model.codes import (
    ACCOUNT_NOT_ACTIVE,
    AUTH_THROTTLED,
    AUTHORIZATION_NAME_MISMATCH,
    BAD_CREDENTIALS,
    BAD_SDP,
    CPS_EXCEEDED,
    EMPTY_BODY,
    IP_NOT_IN_ACL,
    NO_AUTH_MAPPED,
    NO_COMMON_CODEC,
    NOT_TLS,
    POSSIBLE_LOOP,
    REALM,
    RTP_ON_SECURE,
    SIPS_NOT_SUPPORTED,
    SRTP_NOT_KEYABLE,
    SRTP_NOT_SECURE,
    TOO_MANY_HOPS,
    CallError,
    Stage,
)
from ..model.rates import FailureWindow, RateLimit
from ..settings import Fidelity
from ..sip.digest import (
    Credentials,
    NonceCountTracker,
    NonceIssuer,
    NonceStatus,
    compute_ha1,
    make_challenge,
    nonce_context,
    verify,
)
from ..sip.errors import SipParseError
from ..sip.frozen import quicken
from ..sip.message import Request
from ..sip.sdp import SdpError, refuse_offer, srtp_refusal, summarize_offer
from ..sip.uri import SipUri
from .catalogue import Catalogue, HostMatch, Region

# Twilio's challenge names no algorithm, i.e. MD5 (spec §4.3): an answer computed with any
# other algorithm answers a challenge that was never made.
CHALLENGED_ALGORITHMS = frozenset({"MD5"})

# An answer naming an unknown username is verified against this HA1 all the same, so it costs
# what a wrong password for a known username costs (no timing tells which usernames exist).
# Random per process: no password matches it, and its answer is refused whatever it computes.
_NO_SUCH_USER_HA1 = compute_ha1("", REALM, secrets.token_hex(16))


@dataclass(frozen=True)
class Verdict:
    """How a stage decided the call: a final response, or ``status=None`` for silence."""

    stage: Stage
    status: int | None
    reason: str = ""
    error: CallError | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def silent(self) -> bool:
        return self.status is None


quicken(Verdict)


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
    # Failed digest answers per source address (settings auth_failure_*, off by default).
    failures: FailureWindow = field(default_factory=FailureWindow)


@dataclass(slots=True)  # two per call, each read a few dozen times by the stages
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
    # Shared by the nodes of one twin (the call registry's): 32013 counts calls per account.
    call_rate: RateLimit | None = None


StageCheck = Callable[[InviteContext], Verdict | None]


def max_forwards_not_exhausted(ctx: InviteContext) -> Verdict | None:
    if ctx.request.max_forwards == 0:
        return Verdict(Stage.MAX_FORWARDS_NOT_EXHAUSTED, 483, "Too Many Hops", TOO_MANY_HOPS)
    return None


def sip_scheme_only(ctx: InviteContext) -> Verdict | None:
    """Twilio documents that ``sips:`` is not supported (spec §4.1). Refusing a SIPS
    Request-URI or top Record-Route also keeps the 200 from needing a ``sips:`` Contact,
    which RFC 3261 §12.1.1 would then require."""
    request = ctx.request
    uri = request.uri
    sips = isinstance(uri, SipUri) and uri.scheme == "sips"
    try:
        # (most INVITEs carry no Record-Route: no view to decode for them)
        record_routes = request.record_routes if request.headers.by_key("record-route") else []
    except (SipParseError, ValueError):
        record_routes = []
    if record_routes and isinstance(record_routes[0].uri, SipUri):
        sips = sips or record_routes[0].uri.scheme == "sips"
    if sips:
        return Verdict(Stage.SIP_SCHEME_ONLY, ctx.fidelity.sips_status, "Unsupported URI Scheme",
                       SIPS_NOT_SUPPORTED)
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
        return Verdict(Stage.DOMAIN_EXISTS, status)
    ctx.host, ctx.domain = host, domain
    return None


def account_active(ctx: InviteContext) -> Verdict | None:
    """A suspended or closed account's domains take no calls (10001)."""
    assert ctx.domain is not None
    return inactive_account(ctx.domain, ctx.fidelity, Stage.ACCOUNT_ACTIVE)


def inactive_account(domain: DomainSnapshot, fidelity: Fidelity, stage: Stage) -> Verdict | None:
    if domain.is_account_active:
        return None
    return Verdict(stage, fidelity.inactive_account_status, "", ACCOUNT_NOT_ACTIVE)


def contact_not_loopback(ctx: InviteContext) -> Verdict | None:
    """32105: a Contact at 127.0.0.1 or localhost would send Twilio's requests back to itself."""
    host = loopback_contact(ctx.request, ctx.source_ip, ctx.fidelity.loopback_contact)
    if host is None:
        return None
    ctx.notes.append(f"Contact points at {host}, a loopback address of the caller's own host")
    return Verdict(Stage.CONTACT_NOT_LOOPBACK, ctx.fidelity.loopback_contact_status, "Loop Detected",
                   POSSIBLE_LOOP)


def loopback_contact(request: Request, source_ip: str, mode: str) -> str | None:
    """The loopback host a Contact names, if the ``loopback_contact`` setting refuses it.

    A twin runs on loopback, where its callers' Contacts are loopback addresses and reachable:
    under ``outside-callers`` only a caller from another address is refused.
    """
    if mode == "accept":
        return None
    if mode == "outside-callers" and _is_loopback(source_ip):
        return None
    try:
        contacts = request.contacts
    except (SipParseError, ValueError):
        return None
    for contact in contacts:
        uri = contact.address.uri if contact.address is not None else None
        if not isinstance(uri, SipUri):
            continue
        host = uri.host.strip("[]").lower()
        if host == "localhost" or _is_loopback(host):
            return uri.host
    return None


@functools.lru_cache(maxsize=4096)  # a PBX's calls repeat its address and Contact host
def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def call_authentication_mapped(ctx: InviteContext) -> Verdict | None:
    assert ctx.domain is not None
    if not ctx.domain.has_call_authentication:
        return Verdict(Stage.CALL_AUTHENTICATION_MAPPED, ctx.fidelity.no_auth_status, "Forbidden",
                       NO_AUTH_MAPPED)
    return None


def secure_domain_uses_tls(ctx: InviteContext) -> Verdict | None:
    assert ctx.domain is not None
    if ctx.domain.secure and ctx.transport != "tls":
        return Verdict(Stage.SECURE_DOMAIN_USES_TLS, ctx.fidelity.secure_transport_status,
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
        return Verdict(Stage.SOURCE_IP_IN_ACL, None, "dropped: source IP not in ACL", IP_NOT_IN_ACL)
    return Verdict(Stage.SOURCE_IP_IN_ACL, 403, "Forbidden", IP_NOT_IN_ACL)


def digest_credentials_valid(ctx: InviteContext) -> Verdict | None:
    domain = ctx.domain
    assert domain is not None
    if not domain.call_credential_lists:
        return None
    return check_digest(ctx, "INVITE", domain.call_credentials, Stage.DIGEST_CREDENTIALS_VALID)


def check_digest(
    ctx: InviteContext, method: str, credentials: dict[str, CredentialSnapshot] | object,
    stage: Stage,
) -> Verdict | None:
    request = ctx.request
    bound = [request.call_id, ctx.source_ip]
    if ctx.digest.bind_source_port:
        bound.append(str(ctx.source_port))
    if ctx.digest.worker is not None:
        bound.append(f"worker {ctx.digest.worker}")
    context = nonce_context(*bound)
    throttled = _throttled(ctx, stage)
    if throttled is not None:
        return throttled
    offered = _credentials_for_realm(request)
    if offered is None:
        return _challenge(ctx, stage, context, stale=False)
    nonce = offered.nonce or ""
    status = ctx.digest.issuer.check(nonce, ctx.now, REALM, context)
    if status is NonceStatus.INVALID:
        ctx.notes.append("nonce not issued by this twin for this Call-ID and source")
        return _challenge(ctx, stage, context, stale=False)
    algorithm = offered.algorithm
    if algorithm.upper() not in CHALLENGED_ALGORITHMS:
        ctx.notes.append(f"digest answer uses algorithm {algorithm}, but the challenge "
                         f"offered only {', '.join(sorted(CHALLENGED_ALGORITHMS))}")
        return _failed(ctx, stage)
    username = offered.username
    stored = credentials.get(username or "")  # type: ignore[attr-defined]
    ha1 = stored.ha1_md5 if stored is not None else _NO_SUCH_USER_HA1
    expected_uri = request.uri_text if ctx.fidelity.digest_uri_check == "strict" else None
    result = verify(offered, method, ha1, request.body, expected_uri)
    if stored is None:
        ctx.notes.append(f"unknown username {username!r}")
        return _failed(ctx, stage)
    if not result.ok:
        ctx.notes.append(f"digest verification failed: {result.reason} {result.detail}".strip())
        return _failed(ctx, stage)
    if status is NonceStatus.STALE:
        return _challenge(ctx, stage, context, stale=True)
    nc = offered.nc
    if not ctx.digest.counts.accept(nonce, nc if nc is not None else 0):
        ctx.notes.append("nonce count replayed")
        return _forbidden(ctx, stage)
    named = _username_to_match(request, method, ctx.fidelity.authorization_name_match)
    if named is not None and named != username:
        ctx.notes.append(f"authorization name {username!r} differs from the username "
                         f"{named!r} of the {'AOR' if method == 'REGISTER' else 'From URI'}")
        return Verdict(stage, ctx.fidelity.authorization_name_status, "Forbidden",
                       AUTHORIZATION_NAME_MISMATCH)
    ctx.username, ctx.credentials = username, offered
    return None


def _username_to_match(request: Request, method: str, mode: str) -> str | None:
    """The username 32106 compares the authorization name with, or None when not checked:
    a REGISTER's AOR (To) user; an INVITE's From user only under ``always``."""
    if mode == "off" or (method != "REGISTER" and mode != "always"):
        return None
    try:
        uri = request.to.uri if method == "REGISTER" else request.from_.uri
    except (SipParseError, ValueError):
        return ""
    return (uri.user or "") if isinstance(uri, SipUri) else ""


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


def _challenge(ctx: InviteContext, stage: Stage, context: bytes, stale: bool) -> Verdict:
    nonce = ctx.digest.issuer.issue(ctx.now, REALM, context)
    before, after = _challenge_around_nonce(ctx.digest.opaque, stale)
    # Twilio's edge challenges REGISTER with 407 too, not 401 (spec §4.8, observed).
    return Verdict(stage, 407, "Proxy Authentication Required", None,
                   (("Proxy-Authenticate", before + nonce + after),))


_NONCE_MARK = "nonce-stand-in"  # appears nowhere else in a challenge (the opaque is hex)


@functools.lru_cache(maxsize=64)  # one opaque per twin (or per worker), stale or not
def _challenge_around_nonce(opaque: str, stale: bool) -> tuple[str, str]:
    """The challenge header as ``make_challenge`` writes it, cut where the nonce goes: every
    challenge differs only in its nonce (base64url, written as it is), so it is rendered once
    with a stand-in and the fresh nonce spliced in."""
    header = make_challenge(REALM, _NONCE_MARK, opaque, stale=stale).to_header()
    before, after = header.split(_NONCE_MARK)
    return before, after


def _throttled(ctx: InviteContext, stage: Stage) -> Verdict | None:
    """With ``auth_failure_throttle`` on, a source with that many recent failures is refused
    before its answer is looked at, until its window passes."""
    fidelity = ctx.fidelity
    limit = int(fidelity.auth_failure_throttle)
    if limit <= 0:  # off (the default)
        return None
    wait = ctx.digest.failures.blocked_for(ctx.source_ip, limit,
                                           float(fidelity.auth_failure_window), ctx.now)
    if wait <= 0:
        return None
    ctx.notes.append(f"{fidelity.auth_failure_throttle} failed digest answers from "
                     f"{ctx.source_ip} within {fidelity.auth_failure_window:g} s: throttled for "
                     f"{wait:.0f} s more (auth_failure_throttle)")
    status = fidelity.auth_failure_throttle_status
    retry = (("Retry-After", str(math.ceil(wait))),) if status == 503 else ()
    return Verdict(stage, status, "Service Unavailable" if status == 503 else "Forbidden",
                   AUTH_THROTTLED, retry)


def _failed(ctx: InviteContext, stage: Stage) -> Verdict:
    """A wrong answer: counted against its source (when the throttle is on), then 32202."""
    fidelity = ctx.fidelity
    ctx.digest.failures.record(ctx.source_ip, int(fidelity.auth_failure_throttle),
                               float(fidelity.auth_failure_window), ctx.now)
    return _forbidden(ctx, stage)


def _forbidden(ctx: InviteContext, stage: Stage) -> Verdict:
    return Verdict(stage, ctx.fidelity.bad_credentials_status, "Forbidden", BAD_CREDENTIALS)


def media_offer_acceptable(ctx: InviteContext) -> Verdict | None:
    domain = ctx.domain
    assert domain is not None
    body = ctx.request.body
    status = ctx.fidelity.media_mismatch_status
    if not body:
        if ctx.request.headers.get("Content-Type"):
            # It declares a session description and sends none (32103); without a
            # Content-Type it is a late offer, and the 200 OK will carry ours.
            return Verdict(Stage.MEDIA_OFFER_ACCEPTABLE, status, "Not Acceptable Here", EMPTY_BODY)
        return None
    try:
        offer = ctx.request.sdp
    except SdpError as err:
        ctx.notes.append(str(err))
        return Verdict(Stage.MEDIA_OFFER_ACCEPTABLE, status, "Not Acceptable Here", BAD_SDP)
    summary = summarize_offer(offer)
    ctx.offer_summary = summary
    if summary.srtp_offered and not domain.secure:
        return Verdict(Stage.MEDIA_OFFER_ACCEPTABLE, status, "Not Acceptable Here", SRTP_NOT_SECURE)
    if domain.secure and not summary.srtp_offered:
        return Verdict(Stage.MEDIA_OFFER_ACCEPTABLE, status, "Not Acceptable Here", RTP_ON_SECURE)
    unkeyable = srtp_refusal(offer) if domain.secure else None
    if unkeyable is not None:
        ctx.notes.append(unkeyable)
        return Verdict(Stage.MEDIA_OFFER_ACCEPTABLE, status, "Not Acceptable Here", SRTP_NOT_KEYABLE)
    refused = refuse_offer(offer)
    if refused is not None:
        ctx.notes.append(refused.reason)
        return Verdict(Stage.MEDIA_OFFER_ACCEPTABLE, status, "Not Acceptable Here", NO_COMMON_CODEC)
    return None


def account_within_cps(ctx: InviteContext) -> Verdict | None:
    """32013: the account's SIP-interface calls per second (``account_cps_limit``)."""
    assert ctx.domain is not None
    rate = float(ctx.fidelity.account_cps_limit)
    if ctx.call_rate is None or ctx.call_rate.allow(ctx.domain.account_sid, rate, ctx.now):
        return None
    return Verdict(Stage.ACCOUNT_WITHIN_CPS, ctx.fidelity.rate_limited_status, "Service Unavailable",
                   CPS_EXCEEDED)


# The order of spec §4.2. 100 Trying goes out before the first stage in the ``observed``
# profile and right after ``source_ip_in_acl`` in ``seed`` (an unlisted address hears nothing).
STAGES: tuple[StageCheck, ...] = (
    max_forwards_not_exhausted,
    sip_scheme_only,
    domain_exists,
    account_active,
    contact_not_loopback,
    call_authentication_mapped,
    secure_domain_uses_tls,
    source_ip_in_acl,
    digest_credentials_valid,
    media_offer_acceptable,
    account_within_cps,
)
TRYING_AFTER = source_ip_in_acl


def run_pipeline(ctx: InviteContext, send_trying: Callable[[], None]) -> Verdict | None:
    """Run the stages in order; None means the call is accepted."""
    if ctx.fidelity.trying_before_acl:
        send_trying()
    for stage in STAGES:
        verdict = stage(ctx)
        if verdict is not None:
            return verdict
        if stage is TRYING_AFTER and not ctx.fidelity.trying_before_acl:
            send_trying()
    return None
