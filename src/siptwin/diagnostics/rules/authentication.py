"""The digest exchange (rules 2-5): realm, unanswered or looping 407s, nonce reuse, unknown
usernames and wrong passwords, the digest ``uri``, and client digest bugs."""

from __future__ import annotations

from collections.abc import Iterator

from ...model.codes import REALM, CallStatus
from ...model.findings import ERROR, WARNING, Finding
from ...sip.digest import parse_challenge
from ...sip.errors import SipParseError
from ...sip.message import Request
from ...sip.uri import parse_uri
from ..engine import rule
from ..facts import CallFacts, Msg

BOTH = ("INVITE", "REGISTER")
REALM_FIX = (
    'Let the PBX answer with the realm Twilio sends, "sip.twilio.com", never the domain name: '
    "Asterisk pjsip - an outbound_auth of type=auth with no realm (or realm=sip.twilio.com); "
    "FreeSWITCH - leave the gateway's realm unset (from-domain/proxy may stay the domain); "
    'Kamailio - modparam("uac", "credential", "user:sip.twilio.com:password") and uac_auth() '
    "in the failure route for 401/407.")


def _challenges(facts: CallFacts) -> list[Msg]:
    seen: set[bytes] = set()
    out = []
    for m in facts.outgoing_responses(facts.method):
        if m.status in (401, 407) and m.entry.data not in seen:
            seen.add(m.entry.data)
            out.append(m)
    return out


def _attempts(facts: CallFacts) -> list[tuple[Msg, object]]:
    return [(m, c) for m in facts.initial_requests if (c := m.credentials()) is not None]


def _challenge_line(facts: CallFacts) -> str | None:
    challenges = _challenges(facts)
    if not challenges:
        return None
    return challenges[-1].header_line("Proxy-Authenticate") or challenges[-1].header_line(
        "WWW-Authenticate")


@rule("realm-mismatch", spec=2, methods=BOTH)
def realm_mismatch(facts: CallFacts) -> Iterator[Finding]:
    call = facts.call
    challenge = _challenge_line(facts)
    for msg, cred in _attempts(facts):
        realm = cred.realm or ""  # type: ignore[attr-defined]
        if realm.lower() != REALM:
            evidence = [msg.credentials_line() or ""]
            if challenge:
                evidence.insert(0, challenge)
            yield Finding(
                "realm-mismatch", ERROR if facts.failed else WARNING,
                f'The PBX answered Twilio\'s challenge with realm="{realm}", but Twilio always '
                f'challenges with realm="{REALM}" (never the domain name), so the digest cannot '
                "match and Twilio answers 403.", REALM_FIX, tuple(evidence), 32202, 2)
            return
    if call.status != CallStatus.CHALLENGED:
        return
    responses = facts.outgoing_responses(facts.method)
    last_request = facts.last_request
    if not responses or responses[-1].status not in (401, 407) or last_request is None:
        return
    if last_request.index > responses[-1].index or last_request.credentials() is not None:
        return  # answered (a 407 to credentials is an auth loop or a stale nonce)
    evidence = [challenge] if challenge else []
    trying_first = any(m.status == 100 for m in responses)
    sent = " → ".join(str(m.status) for m in responses)
    evidence.append(f"responses sent: {sent}; no {facts.method} with credentials followed")
    extra = (" Some simple agents also stop listening after 100 Trying and never see the 407."
             if trying_first else "")
    yield Finding(
        "realm-mismatch", ERROR,
        f"The PBX never answered Twilio's {responses[-1].status} challenge. Most often its "
        f'credentials are pinned to a realm other than "{REALM}" (Asterisk: "No auth '
        'credentials for realm"; Kamailio: "no credential for realm"), or no credentials are '
        "configured for this trunk." + extra,
        REALM_FIX + " Make sure the agent keeps reading responses after 100 Trying.",
        tuple(evidence), None, 2)


@rule("auth-loop", spec=3, methods=BOTH)
def auth_loop(facts: CallFacts) -> Iterator[Finding]:
    challenges = _challenges(facts)
    if len(challenges) <= 2:
        return
    attempts = _attempts(facts)
    stale = sum(1 for c in challenges if "stale=true" in (c.header("Proxy-Authenticate") or "").lower())
    yield Finding(
        "auth-loop", ERROR if facts.failed else WARNING,
        f"Twilio challenged this {facts.method} {len(challenges)} times for one Call-ID "
        f"({len(attempts)} answers with credentials{f', {stale} stale' if stale else ''}): the "
        "PBX keeps answering with credentials Twilio cannot use, so the call never gets past "
        "authentication.",
        "Answer each 407 once, with the nonce of that 407 and a fresh cnonce; do not re-send "
        "cached credentials from an earlier call; check the username and realm.",
        (f"Call-ID: {facts.call.call_id}",
         *[m.first_line + " at +" + f"{m.entry.at - facts.messages[0].entry.at:.2f} s"
           for m in challenges[:5]]), 32202, 3)


@rule("nonce-reuse", spec=3, methods=BOTH)
def nonce_reuse(facts: CallFacts) -> Iterator[Finding]:
    seen: dict[tuple[str, str], Msg] = {}
    for msg, cred in _attempts(facts):
        key = (cred.nonce or "", cred.get("nc") or "")  # type: ignore[attr-defined]
        if key in seen and key[0]:
            yield Finding(
                "nonce-reuse", ERROR if facts.failed else WARNING,
                f"The PBX answered twice with the same nonce and nonce count (nc={key[1] or 'none'})"
                ": Twilio treats that as a replay and refuses it.",
                "Increase nc for every request that reuses a nonce, or answer the newest 407 "
                "with its own nonce.", (msg.credentials_line() or "",), 32202, 3)
            return
        seen[key] = msg
    if facts.note("nonce count replayed"):
        msg = facts.last_request
        yield Finding(
            "nonce-reuse", ERROR,
            "The PBX re-used a nonce with a nonce count Twilio has already seen: Twilio treats "
            "that as a replay and answers 403.",
            "Increase nc for every request that reuses a nonce (00000001, 00000002, ...), or "
            "answer the newest 407 with its own nonce.",
            ((msg.credentials_line() or "") if msg else "",), 32202, 3)
    elif facts.note("nonce not issued"):
        msg = facts.last_request
        yield Finding(
            "nonce-reuse", ERROR if facts.failed else WARNING,
            "The PBX sent credentials with a nonce Twilio never issued for this Call-ID and "
            "source (cached from an earlier call, or from another edge): Twilio challenges again.",
            "Do not pre-send credentials from an earlier call; answer the 407 of this call.",
            ((msg.credentials_line() or "") if msg else "",), None, 3)


@rule("unknown-username", spec=3, methods=BOTH)
def unknown_username(facts: CallFacts) -> Iterator[Finding]:
    note = facts.note("unknown username")
    if note is None:
        return
    msg = facts.last_request
    cred = msg.credentials() if msg else None
    username = (cred.username if cred else None) or note.split(" ", 2)[-1].strip("'")
    domain = facts.domain
    lists = (domain.registration_credential_lists if facts.method == "REGISTER" and domain
             else domain.call_credential_lists if domain else ())
    purpose = "registrations" if facts.method == "REGISTER" else "calls"
    evidence = [msg.credentials_line() or ""] if msg else []
    evidence.append(f"credential lists mapped for {purpose}: "
                    + (", ".join(f"{c.friendly_name} ({c.sid})" for c in lists) or "none"))
    fix = (f"Create the credential {username!r} in a list mapped to {facts.call.domain_name} "
           f"for {purpose}, or correct the username on the PBX (auth user / authname).")
    for hit in (facts.config.credential_lists_with(username, facts.call.account_sid)
                if facts.config else []):
        where = ", ".join(hit.mapped_to) or "no domain"
        evidence.append(f"{username!r} exists in list {hit.friendly_name} ({hit.list_sid}) in "
                        f"region {hit.region}, mapped to {where}")
        if domain is not None and hit.region != domain.region:
            fix = (f"{username!r} lives in a list in {hit.region}, but {domain.domain_name} is "
                   f"active in {domain.region}: credential lists are per region - create it "
                   f"in {domain.region} and map it there.")
        else:
            fix = (f"Map list {hit.friendly_name} ({hit.list_sid}) to {facts.call.domain_name} "
                   f"for {purpose} (Auth/{purpose.capitalize()}/CredentialListMappings).")
    yield Finding(
        "unknown-username", ERROR,
        f"The PBX authenticated as {username!r}, a username in no credential list mapped to "
        f"{facts.call.domain_name} for {purpose}, so Twilio answers 403.",
        fix, tuple(evidence), 32202, 3)


@rule("wrong-password", spec=2, methods=BOTH)
def wrong_password(facts: CallFacts) -> Iterator[Finding]:
    note = facts.note("digest verification failed: bad-response")
    if note is None:
        return
    msg = facts.last_request
    cred = msg.credentials() if msg else None
    if cred is None or (cred.realm or "").lower() != REALM:
        return  # realm-mismatch explains it
    uri = cred.uri or ""
    if isinstance(msg.parsed, Request) and uri and _normal(uri) != _normal(msg.parsed.uri_text):
        return  # digest-uri-mismatch explains it better
    yield Finding(
        "wrong-password", ERROR,
        f"The PBX answered the challenge as {cred.username!r} but its digest does not match the "
        "stored credential: the password configured on the PBX differs from the one in the "
        "credential list, so Twilio answers 403.",
        f"Set the same password on both sides: update the PBX's secret for {cred.username!r}, or "
        "set a new one on the credential (POST .../CredentialLists/CL.../Credentials/CR... "
        "Password=...). Watch for trailing spaces and characters the PBX config escapes.",
        (msg.credentials_line() or "", _challenge_line(facts) or ""), 32202, 2)


def _normal(uri: str) -> str:
    try:
        return str(parse_uri(uri.strip())).lower()
    except SipParseError:
        return uri.strip().lower()


@rule("digest-uri-mismatch", spec=4, methods=BOTH)
def digest_uri_mismatch(facts: CallFacts) -> Iterator[Finding]:
    for msg, cred in _attempts(facts):
        if not isinstance(msg.parsed, Request):
            continue
        uri = cred.uri  # type: ignore[attr-defined]
        if uri is None or _normal(uri) == _normal(msg.parsed.uri_text):
            continue
        failed = bool(facts.note("digest verification failed: uri-mismatch")) or (
            facts.failed and bool(facts.note("digest verification failed: bad-response")))
        yield Finding(
            "digest-uri-mismatch", ERROR if failed else WARNING,
            f'The digest was computed over uri="{uri}" but the request was sent to '
            f"{msg.parsed.uri_text}: something rewrote the Request-URI after the hash (a proxy "
            "or SBC), or the client hashes another URI. Twilio checks the digest against the "
            "Request-URI it received.",
            "Compute the digest over the exact Request-URI sent (SIPp: -auth_uri user@host); "
            "do not let a proxy rewrite the Request-URI after authentication - route with an "
            "outbound proxy / $du instead.",
            (msg.first_line, msg.credentials_line() or ""), 32202 if failed else None, 4)
        return


@rule("digest-client-bug", spec=5, methods=BOTH)
def digest_client_bug(facts: CallFacts) -> Iterator[Finding]:
    challenge_text = _challenge_line(facts)
    challenge = None
    if challenge_text:
        try:
            challenge = parse_challenge(challenge_text.split(":", 1)[1].strip())
        except (SipParseError, ValueError, IndexError):
            challenge = None
    for msg, cred in _attempts(facts):
        problems = []
        qop = cred.get("qop")  # type: ignore[attr-defined]
        if challenge is not None and challenge.qop_options and qop is None:
            problems.append('the 407 offered qop="auth" but the answer has no qop (RFC 2069 form)')
        if qop is not None and qop.lower() not in ("auth", "auth-int"):
            problems.append(f'qop="{qop}" is not a qop value (a JavaScript undefined?)')
        if qop is not None:
            if cred.get("nc") is None:  # type: ignore[attr-defined]
                problems.append("qop is set but nc is missing")
            elif cred.nc is None:  # type: ignore[attr-defined]
                problems.append(f"nc={cred.get('nc')} is not 8 hex digits")  # type: ignore[attr-defined]
            if cred.get("cnonce") is None:  # type: ignore[attr-defined]
                problems.append("qop is set but cnonce is missing")
        algorithm = cred.algorithm  # type: ignore[attr-defined]
        if algorithm.upper() not in ("MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS"):
            problems.append(f"algorithm={algorithm} is not MD5 or SHA-256")
        for name in ("username", "realm", "nonce", "uri", "response"):
            if cred.get(name) is None:  # type: ignore[attr-defined]
                problems.append(f"no {name} parameter")
        if challenge is not None and challenge.opaque and cred.opaque != challenge.opaque:  # type: ignore[attr-defined]
            problems.append("the opaque of the 407 is not echoed back")
        if problems:
            yield Finding(
                "digest-client-bug", ERROR if facts.failed else WARNING,
                "The PBX's digest answer is malformed: " + "; ".join(problems) + ".",
                "Fix or update the SIP stack's digest code: answer qop=auth challenges with "
                "qop=auth, an 8-hex-digit nc and a cnonce, echo opaque, use MD5 or SHA-256.",
                (challenge_text or "", msg.credentials_line() or ""), 32202, 5)
            return
