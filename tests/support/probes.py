"""Probes that start `siptwin up` on the catalogue's fixed addresses run in a network namespace
of their own, so they never meet another twin of the machine; they print their figures as one
JSON line at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.support import REPO


def run_namespaced_probe(module: str, timeout: float = 240) -> Any:
    """Run ``python -m module`` in a fresh network namespace; its last stdout line, decoded."""
    if os.geteuid() != 0:
        pytest.fail("the probe needs a network namespace of its own (root; CI runs as root)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {sys.executable} -m {module}"],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])
