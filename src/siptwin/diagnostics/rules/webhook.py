"""The voice webhook (rule 13): failures and slowness, and what the caller hears."""

from __future__ import annotations

from collections.abc import Iterator

from ...model.calls import DIAL_ALERT_PREFIX
from ...model.findings import ERROR, WARNING, Finding
from ..engine import rule
from ..facts import CallFacts

FAILURE_CODES = {
    11200: "the voice URL could not be fetched (HTTP error status)",
    11205: "the voice URL did not answer in time or refused the connection",
    11206: "the voice URL broke the HTTP protocol",
    11210: "the voice URL's host name does not resolve",
    11215: "the voice URL redirects too many times",
    11220: "the TLS handshake with the voice URL failed",
    11237: "the voice URL's certificate is not trusted",
    11750: "the voice URL returned more than 64 kB",
    12100: "the voice URL returned a document that is not TwiML",
    12300: "the voice URL answered with a Content-Type that is not TwiML",
}
SLOW_SECONDS = 5.0


def _voice(facts: CallFacts) -> list[dict]:
    return [w for w in facts.call.webhooks if w.get("kind") in ("voice", "fallback", "redirect",
                                                                 "action", None)]


@rule("webhook-failed", "webhook-slow", spec=13)
def webhook(facts: CallFacts) -> Iterator[Finding]:
    call = facts.call
    failures = [a for a in call.alerts if a.code in FAILURE_CODES
                and not a.detail.startswith(DIAL_ALERT_PREFIX)]
    records = _voice(facts)
    if failures:
        first = failures[0]
        rescued = any(w.get("kind") == "fallback" and w.get("error") is None and
                      (w.get("status") or 0) < 400 for w in records)
        failure_mode = facts.fidelity.get("webhook_failure", "reject-500")
        if rescued:
            heard = "the fallback URL took over, so the caller got its TwiML"
        elif call.answered_at is not None or failure_mode == "answer-error":
            heard = "the caller heard Twilio's 'an application error has occurred' and a hang-up"
        else:
            heard = f"the PBX got SIP {call.final_status or 500}"
        evidence = [f"{a.code} {a.message}: {a.detail}".rstrip(": ") for a in failures]
        evidence += [f"{w.get('kind')}: {w.get('method')} {w.get('url')} -> "
                     f"{w.get('status') or w.get('error')} in {w.get('elapsed', 0):.2f} s"
                     for w in records[:3]]
        yield Finding(
            "webhook-failed", WARNING if rescued else ERROR,
            f"The SIP side worked but the application did not: {FAILURE_CODES[first.code]} "
            f"({first.code}); {heard}.",
            "Make the voice URL answer 200 with Content-Type text/xml and a <Response> document "
            "within 15 s (connect within 10 s); set a Voice Fallback URL on the domain for "
            "outages.", tuple(evidence), first.code, 13)
        return
    total = float(facts.fidelity.get("webhook_total_timeout", 15.0) or 15.0)
    slow = [w for w in records if (w.get("elapsed") or 0) > min(SLOW_SECONDS, total / 2)]
    if slow:
        w = slow[0]
        yield Finding(
            "webhook-slow", WARNING,
            f"The voice URL took {w.get('elapsed', 0):.1f} s to answer: the caller hears ringing "
            f"meanwhile, and beyond {total:g} s Twilio gives up (11205).",
            "Answer the webhook quickly (do slow work after responding, or <Redirect> to it).",
            (f"{w.get('method')} {w.get('url')} -> {w.get('status')} in {w.get('elapsed', 0):.2f} s",),
            None, 13)
