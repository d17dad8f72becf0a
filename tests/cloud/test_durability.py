"""``kill -9`` the standalone control plane while it takes writes; every acknowledged write
must be there after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from twilio.rest import Client

from siptwin.cloud.view import ControlPlaneView

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "d" * 32


def _start(state: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "siptwin.cloud", "--state", str(state), "--port", "0"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("state:"):
            break
    banner = "".join(lines)
    assert f"TWILIO_ACCOUNT_SID={ACCOUNT_SID}" in banner
    assert AUTH_TOKEN not in banner  # a token from the environment is not echoed
    url = lines[0].split(": ", 1)[1].strip()
    return process, url


def _client(url: str) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = url
    return client


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process, url = _start(state)
    client = _client(url)
    acknowledged: list[str] = []
    enough = threading.Event()

    def write_until_killed() -> None:
        for index in range(10_000):
            try:
                created = client.sip.credential_lists.create(friendly_name=f"list {index}")
            except Exception:
                return  # the server died mid-request: this write was never acknowledged
            acknowledged.append(created.sid)
            if len(acknowledged) == 30:
                enough.set()

    writer = threading.Thread(target=write_until_killed)
    writer.start()
    assert enough.wait(30)
    os.kill(process.pid, signal.SIGKILL)
    writer.join(30)
    process.wait(10)
    assert len(acknowledged) >= 30

    process, url = _start(state)
    try:
        stored = {c.sid for c in _client(url).sip.credential_lists.list(page_size=1000)}
        assert set(acknowledged) <= stored
        assert len(stored) - len(acknowledged) <= 1  # at most the write in flight at the kill
        view = ControlPlaneView(state)
        kinds = [c.kind for c in view.changes_since(0)]
        assert kinds.count("credential_list.created") == len(stored)
    finally:
        process.terminate()
        process.wait(10)


def test_schema_is_versioned_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    import pytest

    from siptwin.cloud.migrations import MIGRATIONS
    from siptwin.cloud.store import Store, database_path

    Store.open(tmp_path).close()
    Store.open(tmp_path).close()  # reopening re-applies nothing
    with sqlite3.connect(database_path(tmp_path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1].version
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.execute(f"PRAGMA user_version = {MIGRATIONS[-1].version + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        Store.open(tmp_path)
