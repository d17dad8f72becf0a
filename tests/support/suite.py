"""The conformance suite run as a user runs it: ``python -m pytest`` in a subprocess, with its
per-item JSON results read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from . import REPO


def run_suite(cwd: Path, *paths: str | Path, regions: str = "us1,ie1",
              scenarios_dir: Path | None = None, extra: list[str] | None = None,
              env_extra: dict[str, str] | None = None) -> tuple[int, str, dict]:
    """Run the scenarios at ``paths`` (relative to the repository, or absolute) from ``cwd``;
    returns the exit code, the output and each record by ``(scenario, region)``."""
    results = cwd / "results"
    argv = [sys.executable, "-m", "pytest", *[str(REPO / p) for p in paths],
            *(["--siptwin-scenarios", str(scenarios_dir)] if scenarios_dir else []),
            "--siptwin-regions", regions, "--siptwin-results-dir", str(results),
            "-p", "no:cacheprovider", "-q", "--rootdir", str(REPO), *(extra or [])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(env_extra or {})
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    records = {}
    for path in results.glob("*.json"):
        record = json.loads(path.read_text())
        records[(record["scenario"], record["region"])] = record
    return proc.returncode, proc.stdout + proc.stderr, records
