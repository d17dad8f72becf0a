"""Security results as result records, so they appear in the HTML report beside scenarios.

Tests under tests/security call :func:`record_security_result` with what a tool saw; the record has
the shape of a scenario item's result (feature ``security``), plus ``notes``.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any


def record_security_result(results_dir: str | Path, finding_id: str, title: str, *, region: str,
                   passed: bool, notes: list[str], pins: list[str] | None = None,
                   peers: list[dict[str, Any]] | None = None, calls: list[dict[str, Any]] | None = None,
                   duration: float = 0.0) -> Path:
    record = {
        "scenario": f"security/{finding_id}", "region": region, "title": title,
        "feature": "security", "pins": pins or [], "outcome": "passed" if passed else "failed",
        "failure_kind": None if passed else "security-finding", "failures": [] if passed else [
            {"kind": "security-finding", "message": notes[0] if notes else title,
             "expected": None, "actual": None}],
        "error": None, "messages": [], "webhooks": [], "calls": calls or [],
        "duration": round(duration, 3), "fidelity": {}, "peers": peers or [], "notes": notes,
        "recorded_at": time.time(),
    }
    directory = Path(results_dir)
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"security/{finding_id}__{region}")
    path = directory / f"{name}.json"
    path.write_text(json.dumps(record, indent=1, default=str))
    return path
