"""Scenario items that drive a real peer are collected first, so that xdist deals them out to
all of its workers instead of queueing them on one."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import REPO


def test_peer_scenarios_come_first_and_the_rest_keep_their_order() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "--collect-only", "-q",
         "-p", "no:cacheprovider", "--siptwin-regions", "us1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    peers = [i for i, line in enumerate(items) if line.startswith("interop/")]
    assert peers and peers == list(range(len(peers))), items[:len(peers) + 2]
    rest = [line.split("::")[0] for line in items[len(peers):]]
    assert rest == sorted(rest)  # collection order (folders, then files) otherwise
