"""What a serving ``siptwin up`` has imported once it is ready: only what serving needs.

Every module a long-running twin imports stays in its memory for good (issue 18 holds it
under 80 MB VmRSS at 1,000 calls/s). The suite's harness, the report, the diagnosis rules
(loaded when an explanation is first asked for) and the test tools never serve a call; nor do
``fractions`` and ``decimal``, which one tone computation once pulled in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import REPO, free_port

pytestmark = pytest.mark.usefixtures("catalogue_addresses")  # binds 127.0.1.1:5060

# Runs the real `siptwin up` (cli.main); once the twin is ready, prints what it imported and
# returns instead of waiting for a signal.
_UP_AND_LIST = """
import json, sys
from siptwin import cli

async def listed():
    print("MODULES " + json.dumps(sorted(sys.modules)), flush=True)

cli.until_terminated = listed
sys.exit(cli.main(sys.argv[1:]))
"""

NEVER_WHILE_SERVING = (
    "siptwin.harness", "siptwin.report", "siptwin.pytest_plugin", "siptwin.diagnostics",
    "twilio", "jinja2", "docker", "scapy", "pytest", "hypothesis", "fractions", "decimal",
)


def test_a_ready_twin_has_not_imported_what_only_tests_reports_or_diagnosis_use(tmp_path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _UP_AND_LIST, "up", "--regions", "us1", "--state",
         str(tmp_path / "state"), "--api-port", str(free_port()), "--dns-port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "siptwin ready" in run.stdout
    line = next(x for x in run.stdout.splitlines() if x.startswith("MODULES "))
    modules = set(json.loads(line.split(" ", 1)[1]))
    assert {"siptwin.regions.node", "siptwin.voice.interpreter", "aiohttp.web"} <= modules
    imported = sorted(m for m in modules
                      if any(m == top or m.startswith(top + ".") for top in NEVER_WHILE_SERVING))
    assert imported == []
