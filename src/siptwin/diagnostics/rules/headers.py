"""Custom headers (rule 10): which reach the webhook as ``SipHeader_<Name>``, which are
dropped and why (no X- prefix, illegal characters, too long, repeated, reserved, total cap)."""

from __future__ import annotations

from collections.abc import Iterator

from ...model.findings import WARNING, Finding
from ...model.presentation import USER_TO_USER, sip_header_params
from ...sip.headers import Headers
from ..engine import rule
from ..facts import CallFacts

HEADER_LIMIT = 1024  # documented for <Dial><Sip>; unconfirmed inbound
_STANDARD_NAMES = """
Accept Accept-Contact Accept-Encoding Accept-Language Accept-Resource-Priority Alert-Info Allow
Allow-Events Answer-Mode Authentication-Info Authorization Call-ID Call-Info Contact
Content-Disposition Content-Encoding Content-Language Content-Length Content-Type CSeq Date
Diversion Encryption Error-Info Event Expires Feature-Caps Flow-Timer From Geolocation
Geolocation-Error Geolocation-Routing Hide History-Info Identity Identity-Info In-Reply-To
Info-Package Join Max-Breadth Max-Forwards MIME-Version Min-Expires Min-SE Organization Path
Priority Privacy Proxy-Authenticate Proxy-Authorization Proxy-Require RAck Reason Record-Route
Recv-Info Refer-Sub Refer-To Referred-By Reject-Contact Remote-Party-ID Replaces Reply-To
Request-Disposition Require Resource-Priority Response-Key Retry-After Route RSeq
Security-Client Security-Server Security-Verify Server Service-Route Session-Expires Session-ID
SIP-ETag SIP-If-Match Subject Subscription-State Supported Suppress-If-Match Target-Dialog
Timestamp To Trigger-Consent Unsupported User-Agent User-to-User Via Warning WWW-Authenticate
Cisco-Guid Cisco-GUID
"""
STANDARD = frozenset(Headers.key(n) for n in _STANDARD_NAMES.split())


def _illegal(text: str) -> list[str]:
    return sorted({repr(ch) for ch in text if not (" " <= ch <= "~" or ch == "\t")})


@rule("x-header-dropped", spec=10)
def x_headers(facts: CallFacts) -> Iterator[Finding]:
    msg = facts.last_request
    if msg is None or msg.parsed is None:
        return
    headers = list(msg.parsed.headers)
    repeated = str(facts.fidelity.get("repeated_x_header", "first"))
    cap = int(facts.fidelity.get("x_header_total_cap") or 0)
    passed_by_twin = {name for name, _ in sip_header_params(headers, repeated, cap).params}
    seen: set[str] = set()
    passed: list[str] = []
    dropped: list[str] = []
    risky: list[str] = []
    illegal = False
    for name, value in headers:
        lowered = name.lower()
        custom = lowered.startswith("x-") or lowered == USER_TO_USER.lower()
        if not custom:
            if Headers.key(name) not in STANDARD and not lowered.startswith("p-"):
                dropped.append(f"{name}: {value[:60]} → dropped: no X- prefix (rename it "
                               f"X-{name} to receive SipHeader_X-{name})")
            continue
        param = f"SipHeader_{name}"
        bad = _illegal(name + value)
        if lowered.startswith("x-twilio-"):
            dropped.append(f"{name} → dropped: X-Twilio-* names are reserved for Twilio")
        elif bad:
            illegal = True
            dropped.append(f"{name}: {value[:60]} → dropped silently (32112): illegal "
                           f"character(s) {', '.join(bad)}")
        elif lowered in seen:
            dropped.append(f"{name}: {value[:60]} → dropped: repeated header, the "
                           f"{repeated} occurrence wins")
        elif param not in passed_by_twin:
            dropped.append(f"{name} → dropped by the twin: the custom headers together exceed "
                           f"x_header_total_cap={cap} characters")
        else:
            passed.append(f"{name}: {value[:60]} → {param}")
            if len(name) + len(value) > HEADER_LIMIT:
                # Twilio documents no inbound limit (spec §9), only 1024 for <Dial><Sip>.
                risky.append(f"{name} ({len(name) + len(value)} characters) → passed here, but "
                             f"over the {HEADER_LIMIT} characters Twilio documents for "
                             "outbound headers: unconfirmed inbound")
        seen.add(lowered)
    if not dropped and not risky:
        return
    yield Finding(
        "x-header-dropped", WARNING,
        (f"{len(dropped)} header(s) the PBX sent will not reach the voice webhook as "
         "SipHeader_ parameters; only X- headers (and User-to-User) with plain printable ASCII "
         "values pass, name case kept." if dropped else
         f"{len(risky)} header(s) reach the webhook here but are longer than any limit Twilio "
         "documents; a pass here may not mean a pass on Twilio."),
        "Prefix custom headers with X- (the parameter is SipHeader_ plus the name exactly as "
        "sent), keep values printable ASCII (percent-encode anything else), keep each header "
        "well under 1024 characters, and send each name once.",
        tuple(dropped + risky + passed), 32112 if illegal else None, 10,
        {"passed": passed, "dropped": dropped, "risky": risky})
