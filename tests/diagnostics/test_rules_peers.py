"""The classic mistakes made by real peers - Kamailio, baresip, SIPp, sipsak - and explained."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD, REPO, free_port
from tests.support.baresip import baresip_config, write_silence
from tests.support.peers import require_tool, run
from tests.support.twin import by_id

pytestmark = pytest.mark.peer

HOST = "acme.sip.us1.twilio.com"
REJECT = "twiml:<Response><Reject/></Response>"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


class Kamailio:
    """harness/diagnostics/kamailio.cfg rendered and run as a daemon, stopped by its pid file."""

    def __init__(self, workdir: Path, **tokens: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        text = (REPO / "harness/diagnostics/kamailio.cfg").read_text()
        tokens = {"SBC_ADDR": "127.0.0.1", "SBC_PORT": str(self.port), "MODULE_PATH": MODULES,
                  **tokens}
        for name in sorted(tokens, key=len, reverse=True):
            text = text.replace(name, tokens[name])
        self.config = workdir / "kamailio.cfg"
        self.config.write_text(text)
        self.pidfile = workdir / "kamailio.pid"

    async def __aenter__(self) -> Kamailio:
        binary = require_tool("kamailio")
        log = self.workdir / "kamailio.log"

        def launch() -> int:
            # The daemon keeps its stdio: a file, never a pipe someone waits on.
            with log.open("wb") as out:
                return subprocess.run(
                    [binary, "-f", str(self.config), "-P", str(self.pidfile), "-m", "64",
                     "-M", "8", "-Y", str(self.workdir)], stdin=subprocess.DEVNULL,
                    stdout=out, stderr=out, timeout=20).returncode

        code = await asyncio.to_thread(launch)
        assert code == 0, log.read_text(errors="replace")[-3000:]
        for _ in range(100):
            if self.pidfile.exists() and self.pidfile.read_text().strip():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        return self

    def log(self) -> str:
        path = self.workdir / "kamailio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def __aexit__(self, *exc: object) -> None:
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.05)


async def _sipsak_through(sbc: Kamailio, tmp_path: Path) -> str:
    sipsak = require_tool("sipsak")
    invite = (REPO / "harness/sipsak/invite.txt").read_text().replace("$dsthost$", HOST)
    (tmp_path / "invite.txt").write_text(invite)
    _, out = await run(sipsak, "-f", str(tmp_path / "invite.txt"), "-G", "-s",
                       f"sip:1000@127.0.0.1:{sbc.port}", "--local-ip", "127.0.0.1", "-vv",
                       timeout=30)
    return out


def _only_call(harness, out: str = ""):
    calls = [c for c in harness.twin.calls.all() if c.method == "INVITE"]
    assert calls, f"the twin saw no INVITE:\n{out[-3000:]}"
    return calls[-1]


async def test_kamailio_with_a_realm_pinned_to_the_domain_name(harness, tmp_path) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("us1")
    async with Kamailio(tmp_path, TWIN_ADDR=address, TWIN_PORT=str(port), RURI_HOST=HOST,
                        AUTH_USER="alice", REALM="acme.sip.twilio.com",
                        AUTH_PASS=PASSWORD) as sbc:
        out = await _sipsak_through(sbc, tmp_path)
    call = _only_call(harness, out + sbc.log())
    assert call.status == "challenged", out[-2000:]
    finding = by_id(harness.twin, call.call_id)["realm-mismatch"]
    assert finding.severity == "error" and "never answered" in finding.sentence
    assert 'modparam("uac", "credential", "user:sip.twilio.com:password")' in finding.fix


async def test_kamailio_putting_the_ip_in_the_request_uri(harness, tmp_path) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("us1")
    async with Kamailio(tmp_path, TWIN_ADDR=address, TWIN_PORT=str(port),
                        RURI_HOST=f"{address}:{port}", AUTH_USER="alice", REALM="sip.twilio.com",
                        AUTH_PASS=PASSWORD) as sbc:
        out = await _sipsak_through(sbc, tmp_path)
    call = _only_call(harness, out + sbc.log())
    assert call.request_uri == f"sip:1000@{address}:{port}", out[-2000:]
    finding = by_id(harness.twin, call.call_id)["request-uri-is-ip"]
    assert finding.severity == "error" and finding.code is None
    assert f"sip:1000@{HOST}" in finding.fix and "$du" in finding.fix


async def test_baresip_with_a_wrong_password(harness, tmp_path) -> None:
    baresip = require_tool("baresip")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("us1")
    write_silence(tmp_path / "tone.wav")
    rtp = free_port() & ~1
    (tmp_path / "config").write_text(baresip_config(
        sip_port=free_port(), wav=tmp_path / "tone.wav", rtp_low=rtp))
    (tmp_path / "accounts").write_text(
        f"<sip:alice@{HOST};transport=udp>;auth_user=alice;auth_pass=Wr0ngPassword9;regint=0;"
        f"outbound=\"sip:{address}:{port};transport=udp\"\n")
    _, out = await run(baresip, "-f", str(tmp_path), "-e", f"/dial sip:1000@{HOST}", "-t", "4",
                       timeout=30, env={**os.environ, "HOME": str(tmp_path)})
    call = _only_call(harness)
    assert call.final_status == 403, out[-3000:]
    finding = by_id(harness.twin, call.call_id)["wrong-password"]
    assert finding.code == 32202 and "'alice'" in finding.sentence
    assert "password" in finding.fix


async def _sipp(harness, tmp_path, scenario: str, *extra: str, timeout: float = 40) -> str:
    sipp = require_tool("sipp")
    address, port = harness.node_port("us1")
    _, out = await run(
        sipp, f"{address}:{port}", "-sf", str(REPO / "harness/sipp" / scenario),
        "-key", "domain", HOST, "-s", "1000", *extra, "-i", "127.0.0.1", "-p", str(free_port()),
        "-m", "1", "-recv_timeout", "15s", "-timeout", "25s", "-nostdin", cwd=tmp_path,
        timeout=timeout)
    return out


async def test_sipp_with_a_private_sdp_address(harness, tmp_path) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"], voice_url=REJECT))
    out = await _sipp(harness, tmp_path, "diag_private_sdp.xml", "-key", "private_ip",
                      "192.168.1.20")
    finding = by_id(harness.twin, _only_call(harness).call_id).get("private-sdp-address")
    assert finding is not None, out[-2000:]
    assert finding.severity == "warning" and "c=IN IP4 192.168.1.20" in finding.evidence
    assert "external_media_address" in finding.fix and "ext-rtp-ip" in finding.fix


async def test_sipp_ack_to_the_invite_request_uri(harness, tmp_path) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    out = await _sipp(harness, tmp_path, "diag_ack_wrong_uri.xml")
    found = by_id(harness.twin, _only_call(harness).call_id)
    assert "ack-wrong-request-uri" in found, out[-2000:]
    finding = found["ack-wrong-request-uri"]
    assert f"sip:1000@{HOST}" in finding.sentence and "30 s" in finding.sentence
    assert "Contact" in finding.fix


async def test_sipp_that_never_acks_is_dropped_and_explained(harness, tmp_path) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"ack_timeout": 2.0}))
    out = await _sipp(harness, tmp_path, "diag_no_ack.xml")
    call = _only_call(harness)
    assert 32022 in [a.code for a in call.alerts], out[-2000:]
    finding = by_id(harness.twin, call.call_id)["ack-not-received"]
    assert finding.severity == "error" and finding.code == 32022
    assert "dropped after 2 seconds" in finding.sentence


async def test_sipp_digest_uri_is_not_the_request_uri(harness, tmp_path) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    out = await _sipp(harness, tmp_path, "uac_auth.xml", "-au", "alice", "-ap", PASSWORD)
    finding = by_id(harness.twin, _only_call(harness).call_id).get("digest-uri-mismatch")
    assert finding is not None, out[-2000:]
    address, port = harness.node_port("us1")
    assert f'uri="sip:{address}:{port}"' in finding.sentence and "-auth_uri" in finding.fix


async def test_sipsak_header_with_illegal_characters(harness, tmp_path) -> None:
    sipsak = require_tool("sipsak")
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"], voice_url=REJECT))
    address, port = harness.node_port("us1")
    invite = (REPO / "harness/sipsak/invite.txt").read_text().replace("$dsthost$", HOST)
    invite = invite.replace("X-Customer-Id: a=1;b=2;c=3\n",
                            "X-Customer-Id: a=1;b=2;c=3\nX-Customer-Name: Müller\nRoute-Id: 7\n")
    (tmp_path / "invite.txt").write_text(invite, encoding="utf-8")
    _, out = await run(sipsak, "-f", str(tmp_path / "invite.txt"), "-G", "-s",
                       f"sip:1000@{address}:{port}", "--local-ip", "127.0.0.1", "-vv", timeout=30)
    finding = by_id(harness.twin, _only_call(harness).call_id).get("x-header-dropped")
    assert finding is not None, out[-2000:]
    text = "\n".join(finding.evidence)
    assert finding.code == 32112 and "X-Customer-Name: Müller → dropped silently (32112)" in text
    assert "X-Customer-Id: a=1;b=2;c=3 → SipHeader_X-Customer-Id" in text
    assert "Route-Id: 7 → dropped: no X- prefix" in text
