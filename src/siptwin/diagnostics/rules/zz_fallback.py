"""Last rule: a failed call no other rule explained still gets a finding from its alerts."""

from __future__ import annotations

from collections.abc import Iterator

from ...model.findings import ERROR, Finding
from ..engine import rule
from ..facts import CallFacts

EXPLAINED_ELSEWHERE = frozenset({
    32201, 32200, 32202, 32002, 32207, 32208, 32209, 32102, 32022, 32210, 32212, 32007,
    11200, 11205, 11206, 11210, 11215, 11220, 11237, 11750, 12100, 12300})
KNOWN = {
    32006: ("Max-Forwards reached 0 before Twilio: a forwarding loop between proxies.",
            "Look for a routing loop (each proxy decrements Max-Forwards); start at 70."),
    32106: ("The digest credentials are valid, but their username is not the user of the "
            "address being registered (the authorization name and the username differ).",
            "Register each AOR with its own credentials: the auth username must equal the user "
            "part of the To/From URI."),
    32105: ("The Contact header points at a loopback address (127.0.0.1 or localhost): Twilio "
            "would send its requests back to itself, so it refuses the request as a loop.",
            "Put the PBX's reachable address in Contact (check its external/NAT address "
            "settings)."),
    32013: ("The account sent more calls per second than its SIP-interface limit allows.",
            "Slow the call rate down or raise the account's CPS limit."),
    32008: ("The account sent more REGISTERs per second than Twilio accepts.",
            "Spread the registrations out (longer Expires, staggered start)."),
    32103: ("The INVITE declared a session description (Content-Type) but carried no body.",
            "Send the SDP offer, or leave out Content-Type for a late offer."),
}


@rule("twilio-error", methods=("INVITE", "REGISTER"))
def twilio_error(facts: CallFacts) -> Iterator[Finding]:
    """Only when nothing else explained the failure (see :func:`diagnose`)."""
    if not facts.failed:
        return
    for alert in facts.call.alerts:
        if alert.code in EXPLAINED_ELSEWHERE:
            continue
        sentence, fix = KNOWN.get(alert.code, (
            f"Twilio refused the call with {alert.code} {alert.message}.",
            f"See https://www.twilio.com/docs/api/errors/{alert.code}."))
        yield Finding("twilio-error", ERROR, sentence, fix,
                      (f"X-Twilio-Error: {alert.code} {alert.message}",
                       *([alert.detail] if alert.detail else [])), alert.code)
        return
