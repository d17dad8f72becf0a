"""Real peers for the tests: find a tool, run it with a timeout (baresip's configuration:
tests.support.baresip)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from siptwin.harness.sipp import PeerMissing, require_binary

PEER_PASSWORD = "Harbour7Lights!x"  # the minimal UAS's alice: a password with a symbol


def need_peers(*names: str) -> None:
    """Fail (not skip: CI installs them all) unless every named peer binary is installed."""
    for name in names:
        try:
            require_binary(name)
        except PeerMissing as err:
            pytest.fail(str(err))


def require_tool(name: str) -> str:
    """The path of a peer binary; a missing one fails the test (CI installs them all)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap (Debian package needed)")
    return path


async def run(*argv: str, timeout: float = 30.0, cwd: Path | None = None, env=None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, cwd=cwd, env=env,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        return -1, out.decode(errors="replace")
    return proc.returncode or 0, out.decode(errors="replace")
