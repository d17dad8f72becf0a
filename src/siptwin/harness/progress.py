"""``siptwin run``: pytest over the scenarios, a progress bar, and a one-screen summary."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from .optin import MARKER


class ProgressBar:
    """Draws ``[#####.....] 120/528  ✗ 2`` on stderr as items finish (xdist included)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.total = len(items)

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.total = len(ids)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # a scenario file that does not load: say where and why
            sys.stderr.write(f"\n{report.longreprtext.strip().splitlines()[-1]}\n")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.done += 1
            self.failed += report.outcome == "failed"
            self.draw()

    def draw(self) -> None:
        width = max(10, min(50, shutil.get_terminal_size().columns - 30))
        filled = int(width * self.done / self.total) if self.total else 0
        mark = f"  ✗ {self.failed}" if self.failed else ""
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}{mark}")
        sys.stderr.flush()


def run_suite(args: argparse.Namespace) -> int:
    results = Path("reports/results")
    # The progress bar replaces pytest's own terminal output; results come from the JSON files.
    paths = args.paths or [str(default_scenarios())]
    argv = [*paths, "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:benchmark",
            "--siptwin-results-dir", str(results), "--siptwin-report", args.report]
    for path in paths:  # a folder named here opts in even without a marker file
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        if not any((f / MARKER).is_file() for f in (folder.resolve(), *folder.resolve().parents)):
            argv += ["--siptwin-scenarios", str(folder)]
    if args.workers not in ("0", "1"):
        argv += ["-n", str(args.workers)]
    for flag, value in (("--siptwin-regions", args.regions), ("--siptwin-profile", args.profile),
                        ("--siptwin-settings", args.settings), ("-k", args.keyword)):
        if value:
            argv += [flag, value]
    shutil.rmtree(results, ignore_errors=True)
    bar = ProgressBar()
    code = int(pytest.main(argv, plugins=[bar]))
    sys.stderr.write("\n")
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        print(f"siptwin run: pytest could not run the scenarios (exit {code})", file=sys.stderr)
        return code
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("siptwin run: no scenario matched", file=sys.stderr)
        return code
    print_summary(results, args.report)
    return code


def default_scenarios() -> Path:
    """``scenarios/`` of the working directory when it is a suite, else the packaged copy."""
    local = Path("scenarios")
    if (local / MARKER).is_file():
        return local
    return Path(__file__).resolve().parents[1] / "data" / "scenarios"


def print_summary(results_dir: Path, report: str) -> None:
    records: list[dict[str, Any]] = []
    for path in sorted(results_dir.glob("*.json")):
        records.append(json.loads(path.read_text()))
    if not records:
        print("no scenario ran")
        return
    totals = Counter(r["outcome"] for r in records)
    by_feature: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        by_feature[r["feature"]][r["outcome"]] += 1
    regions = sorted({r["region"] for r in records})
    scenarios = {r["scenario"] for r in records}
    print(f"{len(scenarios)} scenarios × {len(regions)} regions = {len(records)} items: "
          + ", ".join(f"{totals[o]} {o}" for o in ("passed", "failed", "broken", "skipped") if totals[o]))
    for feature, counts in sorted(by_feature.items()):
        bad = counts["failed"] + counts["broken"]
        print(f"  {feature:<14} {counts['passed']:>4} passed" + (f"  {bad} not passed" if bad else ""))
    problems = [r for r in records if r["outcome"] in ("failed", "broken")]
    for r in problems[:15]:
        kind = r.get("failure_kind") or r["outcome"]
        first = (r["failures"][0]["message"] if r["failures"] else (r.get("error") or "").splitlines()[0])
        print(f"  ✗ {r['scenario']}[{r['region']}]  {kind}: {first}")
    if len(problems) > 15:
        print(f"  … and {len(problems) - 15} more")
    print(f"report: {report}")
