"""Results → one self-contained HTML conformance report (jinja2), with SIP ladder diagrams."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jinja2

from .. import __version__

OUTCOMES = ("passed", "failed", "broken", "skipped")


def load_results(directory: Path) -> list[dict[str, Any]]:
    if not directory.is_dir():
        return []
    results = []
    for path in sorted(directory.glob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return results


def ladder(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of a two-lane ladder diagram: caller on the left, twin on the right."""
    if not messages:
        return {"height": 40, "arrows": []}
    start = messages[0]["at"]
    arrows = []
    for i, message in enumerate(messages):
        y = 40 + i * 28
        arrows.append({
            "y": y, "out": message["direction"] == "out",
            "label": message["first_line"][:70],
            "offset": f"+{(message['at'] - start) * 1000:.0f} ms",
            "anchor": f"m{i}",
        })
    return {"height": 60 + len(messages) * 28, "arrows": arrows}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    scenarios: dict[str, dict[str, Any]] = {}
    regions: list[str] = []
    for result in results:
        row = scenarios.setdefault(result["scenario"], {
            "id": result["scenario"], "title": result["title"], "feature": result["feature"],
            "pins": result["pins"], "cells": {}})
        row["cells"][result["region"]] = result
        if result["region"] not in regions:
            regions.append(result["region"])
    order = ["us1", "us2", "ie1", "de1", "sg1", "jp1", "br1", "au1"]
    regions.sort(key=lambda r: (order.index(r) if r in order else 99, r))
    by_feature: dict[str, Counter[str]] = defaultdict(Counter)
    by_region: dict[str, Counter[str]] = defaultdict(Counter)
    kinds: Counter[str] = Counter()
    for result in results:
        by_feature[result["feature"]][result["outcome"]] += 1
        by_region[result["region"]][result["outcome"]] += 1
        if result.get("failure_kind"):
            kinds[result["failure_kind"]] += 1
    totals = Counter(r["outcome"] for r in results)
    return {
        "rows": sorted(scenarios.values(), key=lambda r: r["id"]), "regions": regions,
        "by_feature": dict(sorted(by_feature.items())), "by_region": {r: by_region[r] for r in regions},
        "totals": totals, "kinds": kinds, "count": len(results),
    }


FIDELITY_DOC = Path(__file__).resolve().parents[3] / "docs" / "fidelity.md"


def run_settings(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The profiles of a run and every setting some item ran with a non-default value
    (``{name: {value: items}}``), so the report says what a pass here assumed."""
    from ..settings import SETTINGS

    profiles = Counter(str(r.get("fidelity", {}).get("profile", "seed")) for r in results)
    changed: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        record = result.get("fidelity") or {}
        observed = record.get("profile") == "observed"
        for setting in SETTINGS:
            if setting.name not in record:
                continue
            default = setting.observed if observed else setting.default
            default = list(default) if isinstance(default, tuple) else default
            if record[setting.name] != default:
                changed[setting.name][json.dumps(record[setting.name])] += 1
    return {"profiles": dict(profiles), "changed": {k: dict(v) for k, v in sorted(changed.items())}}


def render_report(results_dir: Path, output: Path) -> Path:
    results = load_results(results_dir)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("siptwin.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    for result in results:
        result["ladder"] = ladder(result.get("messages", []))
        result["cell_id"] = f"{result['scenario']}-{result['region']}".replace("/", "-")
        if result.get("pcap"):  # --siptwin-pcap: link relative to the report's folder
            result["pcap_href"] = os.path.relpath(result["pcap"], output.resolve().parent)
    html = env.get_template("report.html.j2").render(
        summary=summarise(results), results=results, outcomes=OUTCOMES, version=__version__,
        settings=run_settings(results),
        fidelity_doc=(os.path.relpath(FIDELITY_DOC, output.resolve().parent)
                      if FIDELITY_DOC.is_file() else "docs/fidelity.md"),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    return output
