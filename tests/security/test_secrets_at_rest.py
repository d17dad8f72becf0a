"""Finding 7 of issue 15: secrets readable by any local user.

The auth token was in siptwin.log and in the SQLite file, both 0644 in a 0755 state directory,
next to HA1 hashes. Now the state directory is 0700 and everything in it 0600, the token is
printed to the terminal (by ``up --detach`` itself, not its log) and never written to a log,
and ``--token-file`` keeps it in a 0600 file for scripts. The SQLite file keeps the token, as
Twilio keeps it (the API returns it to its account).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_state_is_private_and_the_token_stays_out_of_logs(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.fail("a network namespace of its own needs root (CI runs as root)")
    state, token_file = tmp_path / "state", tmp_path / "token"
    # A state directory left world-readable by an older twin, with a log in it.
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    (state / "siptwin.log").write_text("an old log\n")
    os.chmod(state / "siptwin.log", 0o644)
    script = (f"ip link set lo up && {sys.executable} -m siptwin up --detach --regions us1 "
              f"--state {state} --token-file {token_file} -v && "
              f"{sys.executable} -m siptwin down --state {state} >/dev/null")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "TWILIO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    run = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    printed = [line.split("=", 1)[1] for line in run.stdout.splitlines()
               if line.startswith("TWILIO_AUTH_TOKEN=")]
    assert len(printed) == 1, run.stdout
    token = printed[0]

    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    loose = [f"{p.relative_to(state)} {stat.S_IMODE(p.stat().st_mode):o}"
             for p in state.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert loose == [], loose
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    logs = list(state.glob("siptwin.log*"))
    assert len(logs) == 2
    for log in logs:
        assert token not in log.read_text(), f"the auth token is in {log.name}"
