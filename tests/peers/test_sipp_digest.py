"""SIPp completes Twilio's 407 challenge against a UAS built on the core, over UDP and TCP."""

from __future__ import annotations

import pytest

from tests.support import REPO
from tests.support.peers import PEER_PASSWORD, require_tool, run

pytestmark = pytest.mark.peer


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_authenticated_call_completes(uas, transport, tmp_path) -> None:
    sipp = require_tool("sipp")
    port = uas.udp_port if transport == "u1" else uas.tcp_port
    code, out = await run(
        sipp, f"127.0.0.1:{port}", "-sf", str(REPO / "harness/sipp/uac_auth.xml"),
        "-t", transport, "-key", "domain", "acme.sip.twilio.com", "-au", "alice", "-ap", PEER_PASSWORD, "-s", "1000",
        "-auth_uri", "1000@acme.sip.twilio.com", "-i", "127.0.0.1", "-p", "0", "-m", "3", "-r", "3",
        "-recv_timeout", "5s", "-timeout", "20s", "-nostdin", "-trace_err",
        "-error_file", str(tmp_path / "err.log"), cwd=tmp_path,
    )
    assert code == 0, out[-2000:]
    assert uas.log.challenged == 3
    assert uas.log.authenticated == ["alice"] * 3
    assert uas.log.acks == 6 and uas.log.byes == 3


async def test_sipp_wrong_password_is_refused_with_32202(uas, tmp_path) -> None:
    sipp = require_tool("sipp")
    code, out = await run(
        sipp, f"127.0.0.1:{uas.udp_port}", "-sf", str(REPO / "harness/sipp/uac_auth.xml"),
        "-key", "domain", "acme.sip.twilio.com", "-au", "alice", "-ap", "Wr0ngPassword9", "-s", "1000", "-i", "127.0.0.1", "-p", "0",
        "-m", "1", "-recv_timeout", "3s", "-timeout", "10s", "-nostdin", cwd=tmp_path,
    )
    assert code == 1, out[-2000:]  # SIPp counts the call as failed
    assert uas.log.rejected == ["alice"] and uas.log.authenticated == []
