"""Finding 8 of issue 15: ``siptwin down`` and a stale pid file; ``up --detach`` and old logs.

After a ``kill -9`` the pid file stayed behind, and ``siptwin down`` signalled whatever process
had taken the pid since. Now it signals only a process with the start time the twin recorded
and a ``siptwin ... up`` command line. ``up --detach`` used to truncate siptwin.log, losing the
evidence of the crash it was restarted after; now the old logs are kept as siptwin.log.1...5.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _siptwin(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "siptwin", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def _start_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.mark.parametrize("pid_file_form", ["pid only (older twins)", "pid and another start"])
def test_down_never_signals_a_process_that_took_the_twins_pid(tmp_path, pid_file_form) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state = tmp_path / "state"
        state.mkdir()
        record = str(bystander.pid)
        if pid_file_form != "pid only (older twins)":
            record += f" {int(_start_of(bystander.pid)) - 100}"  # the twin started earlier
        (state / "siptwin.pid").write_text(record)
        stopped = _siptwin("down", "--state", str(state))
        assert stopped.returncode == 1 and "stale pid file" in stopped.stderr, stopped.stderr
        time.sleep(0.2)
        assert bystander.poll() is None, "siptwin down killed an unrelated process"
        assert not (state / "siptwin.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_detach_keeps_previous_logs_and_down_stops_its_own_twin(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.fail("a network namespace of its own needs root (CI runs as root)")
    state = tmp_path / "state"
    state.mkdir()
    (state / "siptwin.log").write_text("crash evidence of run 2\n")
    (state / "siptwin.log.1").write_text("crash evidence of run 1\n")
    script = (f"ip link set lo up && {sys.executable} -m siptwin up --detach --regions us1 "
              f"--state {state} >/dev/null && {sys.executable} -m siptwin down --state {state}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    run = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "siptwin stopped" in run.stdout
    assert (state / "siptwin.log.1").read_text() == "crash evidence of run 2\n"
    assert (state / "siptwin.log.2").read_text() == "crash evidence of run 1\n"
    assert "siptwin ready" in (state / "siptwin.log").read_text()
