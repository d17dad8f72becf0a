from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from .minimal_uas import MinimalUas

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Harbour7Lights!x"


def require_tool(name: str) -> str:
    """The path of a peer binary; a missing one fails the test (CI installs them all)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap (Debian package needed)")
    return path


@pytest.fixture
async def uas():
    server = MinimalUas("127.0.0.1", {"alice": PASSWORD})
    await server.start()
    yield server
    await server.close()


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
