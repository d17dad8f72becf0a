"""The rule registry and :func:`diagnose`: run every rule over one call's facts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..model.findings import ERROR, Finding
from .facts import CallFacts

log = logging.getLogger("siptwin.diagnostics")

FALLBACK = "twilio-error"  # explains a failure from its alert when no other rule could
RuleFunction = Callable[[CallFacts], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    name: str  # the function name, for the documentation
    ids: tuple[str, ...]  # the finding ids it can produce
    spec_rule: int | None  # docs/pbx-pitfalls.md, "Diagnostic rules"
    methods: tuple[str, ...]  # INVITE, REGISTER
    function: RuleFunction


RULES: list[Rule] = []


def rule(*ids: str, spec: int | None = None,
         methods: tuple[str, ...] = ("INVITE",)) -> Callable[[RuleFunction], RuleFunction]:
    """Register a rule; ``ids`` are the findings it may yield (documented and tested)."""

    def register(function: RuleFunction) -> RuleFunction:
        RULES.append(Rule(function.__name__, ids, spec, methods, function))
        return function

    return register


def finding_ids() -> list[str]:
    return sorted({i for r in RULES for i in r.ids})


def diagnose(facts: CallFacts) -> list[Finding]:
    """Every finding about the call: errors first, one per id, in rule order."""
    _load_rules()
    found: list[Finding] = []
    seen: set[str] = set()
    for r in RULES:
        if facts.method not in r.methods:
            continue
        try:
            produced = list(r.function(facts))
        except Exception:  # a rule must never break the explanation of the others
            log.exception("diagnostic rule %s failed on %s", r.name, facts.call.call_id)
            continue
        for finding in produced:
            if finding.id not in seen:
                seen.add(finding.id)
                found.append(finding)
    if any(f.severity == ERROR and f.id != FALLBACK for f in found):
        found = [f for f in found if f.id != FALLBACK]
    found.sort(key=lambda f: 0 if f.severity == ERROR else 1)
    return found


def _load_rules() -> None:
    from . import rules  # noqa: F401  (registers on import)
