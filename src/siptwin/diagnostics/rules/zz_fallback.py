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
