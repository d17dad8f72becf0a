"""``<Dial><Sip>`` that reached nobody: why the twin could not place the leg."""

from __future__ import annotations

from collections.abc import Iterator

from ...model.calls import DIAL_ALERT_PREFIX
from ...model.findings import WARNING, Finding
from ..engine import rule
from ..facts import CallFacts

FIXES = {
    11210: "Dial a host name that resolves: publish NAPTR/SRV/A records for it (the twin asks "
           "the resolver in the dial_dns_server setting, else the system's), or dial an IP "
           "address.",
    32002: "Dial an existing SIP domain of this account: user@<label>.sip.twilio.com.",
    32009: "Register the device first (REGISTER to the domain with its registration "
           "credentials), and dial the user name it registered.",
    32214: "Dial only SIP domains of the same account (or its parent).",
    32220: "Dial a registered device as user@<label>.sip.twilio.com, without an edge.",
    32223: "Put the registered user in the URI: sip:alice@<label>.sip.twilio.com.",
}


@rule("dial-target-unreachable", spec=None)
def dial_target_unreachable(facts: CallFacts) -> Iterator[Finding]:
    failures = [a for a in facts.call.alerts
                if a.code in FIXES and a.detail.startswith(DIAL_ALERT_PREFIX)]
    if not failures:
        return
    first = failures[0]
    detail = first.detail.removeprefix(DIAL_ALERT_PREFIX).strip()
    yield Finding(
        "dial-target-unreachable", WARNING,
        f"The call was answered, but its <Dial><Sip> reached nobody: {detail} ({first.code}); "
        "the <Dial> ended with DialCallStatus=failed and the TwiML went on.",
        FIXES[first.code], tuple(f"{a.code} {a.message}: {a.detail}" for a in failures),
        first.code, None)
