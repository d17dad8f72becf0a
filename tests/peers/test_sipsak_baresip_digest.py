"""sipsak and baresip answer Twilio's 407 challenge against a UAS built on the core."""

from __future__ import annotations

import os

import pytest

from tests.support import REPO, free_port
from tests.support.baresip import baresip_config, write_silence
from tests.support.peers import PEER_PASSWORD, require_tool, run

pytestmark = pytest.mark.peer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipsak_invite_completes_challenge(uas, transport) -> None:
    sipsak = require_tool("sipsak")
    port = uas.udp_port if transport == "udp" else uas.tcp_port
    code, out = await run(
        sipsak, "-f", str(REPO / "harness/sipsak/invite.txt"), "-G",
        "-s", f"sip:1000@127.0.0.1:{port}", "-u", "alice", "-a", PEER_PASSWORD,
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





@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_call_completes_challenge(uas, transport, tmp_path) -> None:
    baresip = require_tool("baresip")
    port = uas.udp_port if transport == "udp" else uas.tcp_port
    write_silence(tmp_path / "tone.wav")
    rtp = free_port() & ~1
    (tmp_path / "config").write_text(baresip_config(
        sip_port=free_port(), transport=transport, wav=tmp_path / "tone.wav", rtp_low=rtp))
    (tmp_path / "accounts").write_text(
        f"<sip:alice@acme.sip.twilio.com;transport={transport}>;auth_user=alice;"
        f"auth_pass={PEER_PASSWORD};regint=0;outbound=\"sip:127.0.0.1:{port};transport={transport}\"\n"
    )
    code, out = await run(
        baresip, "-f", str(tmp_path), "-e", "/dial sip:1000@acme.sip.twilio.com",
        "-t", "4", timeout=30, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert uas.log.challenged >= 1, out[-3000:]
    assert uas.log.authenticated == ["alice"], out[-3000:]
    assert uas.log.acks >= 2, out[-3000:]
