"""Real peers for the tests: find a tool, run it with a timeout, configure baresip."""

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


BARESIP_CONFIG = """\
poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{sip_port}
sip_transports\t\t{transport}
net_interface\t\t127.0.0.1
audio_player\t\taubridge,nil
audio_source\t\taufile,{wav}
audio_alert\t\taubridge,nil
rtp_ports\t\t{rtp_low}-{rtp_high}
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
module_app\t\taccount.so
module_app\t\tmenu.so
"""


def write_wav(path) -> None:
    """One second of 8 kHz 16-bit silence: baresip's aufile source needs an 8 kHz WAV."""
    import wave

    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 8000)
