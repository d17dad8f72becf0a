"""harness/ci/github-actions.yml works: its shell steps, run as the runner would run them.

The workspace is a fresh directory laid out as the two ``actions/checkout`` steps leave it:
the user's repository (the example scenario under ci/scenarios and the Kamailio configuration
it points at) and a clone of this repository at HEAD under siptwin/.  Each ``run:`` step then
runs with bash, in order; the workflow's ``sudo`` is a no-op here, where the tests are root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "harness" / "ci" / "github-actions.yml"


def _run_steps() -> list[str]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["validate-pbx"]["steps"]
    return [step["run"] for step in steps if "run" in step]


def test_the_workflow_uses_the_readme_bootstrap() -> None:
    steps = _run_steps()
    assert any("siptwin/scripts/bootstrap" in step for step in steps)
    assert not any("pip install" in step for step in steps)  # no pip into the runner's Python


def test_the_workflow_shell_steps_pass_in_a_fresh_workspace(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the workflow captures packets and installs Debian packages: run as root")
    for binary in ("git", "kamailio", "sipp"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is not installed: run scripts/bootstrap")
    workspace = tmp_path / "workspace"
    (workspace / "ci").mkdir(parents=True)
    shutil.copytree(REPO / "harness" / "ci" / "scenarios", workspace / "ci" / "scenarios")
    (workspace / ".siptwin-scenarios").unlink(missing_ok=True)
    (workspace / "ci" / "scenarios" / ".siptwin-scenarios").unlink()  # the option must do
    shutil.copytree(REPO / "harness" / "pbx" / "kamailio", workspace / "harness" / "pbx" / "kamailio")
    subprocess.run(["git", "clone", "-q", str(REPO), str(workspace / "siptwin")], check=True)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(workspace / "siptwin"), "checkout", "-q", head], check=True)
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "sudo").write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n')
    (shims / "sudo").chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["PATH"] = f"{shims}:/usr/sbin:/usr/bin:/sbin:/bin"
    for step in _run_steps():
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", step], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"step failed:\n{step}\n{(proc.stdout + proc.stderr)[-3000:]}"
    records = [json.loads(p.read_text())
               for p in (workspace / "reports" / "results").glob("*.json")]
    assert sorted(r["region"] for r in records) == ["ie1", "us1"]
    assert all(r["outcome"] == "passed" for r in records), records
    assert (workspace / "reports" / "pbx.html").is_file()
    assert len(list((workspace / "reports" / "pcaps").glob("*.pcap"))) == 2
