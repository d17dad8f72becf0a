"""Real SIP peers place authenticated calls to the twin's region nodes."""

from __future__ import annotations

import os

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from tests.support import PASSWORD, REPO, free_port
from tests.support.baresip import baresip_config, write_silence
from tests.support.peers import require_tool, run

pytestmark = pytest.mark.peer

HOST_FORMS = [
    (region.id, form)
    for region in Catalogue.load(default_catalogue_dir())
    for form in region.host_forms("acme")
]


@pytest.mark.parametrize(("region", "host"), HOST_FORMS, ids=[f"{r}-{h}" for r, h in HOST_FORMS])
async def test_sipp_authenticated_call_in_every_host_form(harness, region, host, tmp_path) -> None:
    sipp = require_tool("sipp")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port(region)
    code, out = await run(
        sipp, f"{address}:{port}", "-sf", str(REPO / "harness/sipp/uac_auth.xml"),
        "-key", "domain", host, "-s", "1000", "-au", "alice", "-ap", PASSWORD,
        "-auth_uri", f"1000@{host}", "-i", "127.0.0.1", "-p", str(free_port()),
        "-m", "1", "-recv_timeout", "5s", "-timeout", "15s", "-nostdin", cwd=tmp_path,
    )
    assert code == 0, out[-1500:]
    call = harness.twin.calls.last()
    assert call.region == region and call.username == "alice" and call.status == "completed"
    assert call.domain_name == "acme.sip.twilio.com"


async def test_sipsak_authenticated_invite_is_answered(harness, tmp_path) -> None:
    sipsak = require_tool("sipsak")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("ie1")
    # sipsak resolves the -s host itself; keep the domain in the message, send to the node.
    invite = (REPO / "harness/sipsak/invite.txt").read_text()
    (tmp_path / "invite.txt").write_text(invite.replace("$dsthost$", "acme.sip.ie1.twilio.com"))
    code, out = await run(
        sipsak, "-f", str(tmp_path / "invite.txt"), "-G",
        "-s", f"sip:1000@{address}:{port}",
        "-u", "alice", "-a", PASSWORD, "--local-ip", "127.0.0.1", "-vv", timeout=40,
    )
    assert code == 0, out[-2000:]
    assert "SIP/2.0 200 OK" in out
    call = harness.twin.calls.last()
    assert call.username == "alice" and call.region == "ie1"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_authenticated_call_is_answered(harness, transport, tmp_path) -> None:
    baresip = require_tool("baresip")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("de1", transport)
    write_silence(tmp_path / "tone.wav")
    rtp = free_port() & ~1
    (tmp_path / "config").write_text(baresip_config(
        sip_port=free_port(), transport=transport, wav=tmp_path / "tone.wav", rtp_low=rtp))
    (tmp_path / "accounts").write_text(
        f"<sip:alice@acme.sip.de1.twilio.com;transport={transport}>;auth_user=alice;"
        f"auth_pass={PASSWORD};regint=0;outbound=\"sip:{address}:{port};transport={transport}\"\n")
    code, out = await run(baresip, "-f", str(tmp_path), "-e", "/dial sip:1000@acme.sip.de1.twilio.com",
                          "-t", "4", timeout=30, env={**os.environ, "HOME": str(tmp_path)})
    calls = [c for c in harness.twin.calls.all() if c.username == "alice"]
    assert calls, out[-3000:]
    assert calls[-1].region == "de1" and calls[-1].answered_at is not None, out[-3000:]


async def test_sipp_ack_of_the_407_stops_its_retransmission(harness, tmp_path) -> None:
    """The shipped SIPp flow ACKs the 407 on the INVITE's branch, so Timer G stops."""
    import asyncio

    sipp = require_tool("sipp")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("us1")
    code, out = await run(
        sipp, f"{address}:{port}", "-sf", str(REPO / "harness/sipp/uac_auth.xml"),
        "-key", "domain", "acme.sip.twilio.com", "-s", "1000", "-au", "alice", "-ap", PASSWORD,
        "-auth_uri", "1000@acme.sip.twilio.com", "-i", "127.0.0.1", "-p", str(free_port()),
        "-m", "1", "-recv_timeout", "5s", "-timeout", "15s", "-nostdin", cwd=tmp_path,
    )
    assert code == 0, out[-1500:]
    await asyncio.sleep(1.6)  # Timer G would have re-sent the 407 at 0.5 s and 1.5 s
    call = harness.twin.calls.last()
    sent_407 = [t for t in call.trace if t.direction == "out" and t.first_line.startswith("SIP/2.0 407")]
    assert len(sent_407) == 1
