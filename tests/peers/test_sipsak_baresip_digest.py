"""sipsak and baresip answer Twilio's 407 challenge against a UAS built on the core."""

from __future__ import annotations

import os
import socket

import pytest

from .conftest import PASSWORD, REPO, require_tool, run

pytestmark = pytest.mark.peer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipsak_invite_completes_challenge(uas, transport) -> None:
    sipsak = require_tool("sipsak")
    port = uas.udp_port if transport == "udp" else uas.tcp_port
    code, out = await run(
        sipsak, "-f", str(REPO / "harness/sipsak/invite.txt"), "-G",
        "-s", f"sip:1000@127.0.0.1:{port}", "-u", "alice", "-a", PASSWORD,
        "--local-ip", "127.0.0.1", "-E", transport, "-vv", timeout=40,
    )
    assert code == 0, out[-2000:]
    assert "SIP/2.0 200 OK" in out
    assert uas.log.challenged == 1 and uas.log.authenticated == ["alice"]


async def test_sipsak_wrong_password_gets_403(uas) -> None:
    sipsak = require_tool("sipsak")
    code, out = await run(
        sipsak, "-f", str(REPO / "harness/sipsak/invite.txt"), "-G",
        "-s", f"sip:1000@127.0.0.1:{uas.udp_port}", "-u", "alice", "-a", "Wr0ngPassword9",
        "--local-ip", "127.0.0.1", "-vv", timeout=40,
    )
    assert code != 0
    assert "403" in out and uas.log.rejected == ["alice"]


def free_port() -> int:
    """A port free for both UDP and TCP: baresip listens on both at its SIP port."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no port free for both UDP and TCP")


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


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_call_completes_challenge(uas, transport, tmp_path) -> None:
    baresip = require_tool("baresip")
    port = uas.udp_port if transport == "udp" else uas.tcp_port
    write_wav(tmp_path / "tone.wav")
    rtp = free_port() & ~1
    (tmp_path / "config").write_text(BARESIP_CONFIG.format(
        sip_port=free_port(), transport=transport, wav=tmp_path / "tone.wav",
        rtp_low=rtp, rtp_high=rtp + 10,
    ))
    (tmp_path / "accounts").write_text(
        f"<sip:alice@acme.sip.twilio.com;transport={transport}>;auth_user=alice;"
        f"auth_pass={PASSWORD};regint=0;outbound=\"sip:127.0.0.1:{port};transport={transport}\"\n"
    )
    code, out = await run(
        baresip, "-f", str(tmp_path), "-e", "/dial sip:1000@acme.sip.twilio.com",
        "-t", "4", timeout=30, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert uas.log.challenged >= 1, out[-3000:]
    assert uas.log.authenticated == ["alice"], out[-3000:]
    assert uas.log.acks >= 2, out[-3000:]
