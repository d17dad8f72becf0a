"""Findings for the scenario engine: records for the report, and the ``then:`` judge."""

from __future__ import annotations

from typing import Any

from ..diagnostics import explain
from ..model.findings import SEVERITIES
from ..twin.config import Twin


def findings_records(twin: Twin, call_ids: list[str]) -> list[dict[str, Any]]:
    """One record per finding of every call of the item (``call_id`` added), errors first."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for call_id in call_ids:
        if not call_id or call_id in seen:
            continue
        seen.add(call_id)
        for finding in explain(twin, call_id):
            out.append({"call_id": call_id, **finding.as_record()})
    out.sort(key=lambda f: 0 if f["severity"] == "error" else 1)
    return out


def judge_findings(twin: Twin, call_id: str, expect: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(kind, message, expected, actual) for each unmet ``findings`` / ``no_findings``."""
    if "findings" not in expect and "no_findings" not in expect:
        return []
    findings = explain(twin, call_id) if call_id else []
    ids = [f.id for f in findings]
    failures: list[tuple[Any, ...]] = []
    missing = [i for i in expect.get("findings") or [] if i not in ids]
    if missing:
        failures.append(("finding-missing", "diagnostic findings", expect["findings"], ids))
    for unwanted in expect.get("no_findings") or []:
        hits = [f.id for f in findings
                if f.id == unwanted or (unwanted in SEVERITIES and f.severity == unwanted)]
        if hits:
            failures.append(("unexpected-finding", f"no {unwanted} finding expected", [], hits))
    return failures
