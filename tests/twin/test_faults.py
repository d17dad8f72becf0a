"""Faults a scenario can inject: a blackholed, slow, lossy or stopped region."""

from __future__ import annotations

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.ua.client import Auth
from tests.support import PASSWORD, REPO, free_port
from tests.support.peers import require_tool, run

PLAN = DomainPlan("acme", credentials=[("alice", PASSWORD)],
                  voice_url='twiml:<Response><Pause length="1"/></Response>')


async def test_a_blackholed_region_is_silent_and_comes_back(harness) -> None:
    await harness.provision(PLAN)
    harness.twin.blackhole_region("ie1")
    dark = await harness.call("ie1", "sip:1@acme.sip.ie1.twilio.com", auth=Auth("alice", PASSWORD),
                              wait_final=1.0)
    assert dark.timed_out and dark.responses == []
    other = await harness.call("de1", "sip:1@acme.sip.de1.twilio.com", auth=Auth("alice", PASSWORD))
    assert other.statuses[-1] == 200
    harness.twin.impair_region("ie1")
    back = await harness.call("ie1", "sip:1@acme.sip.ie1.twilio.com", auth=Auth("alice", PASSWORD))
    assert back.statuses[-1] == 200


async def test_latency_delays_every_answer_of_the_region(harness) -> None:
    await harness.provision(PLAN)
    harness.twin.impair_region("sg1", latency_ms=150)
    result = await harness.call("sg1", "sip:1@acme.sip.sg1.twilio.com", auth=Auth("alice", PASSWORD))
    assert result.statuses[-1] == 200
    sent = next(m for m in result.messages if m.direction == "out")
    first_answer = next(m for m in result.messages if m.direction == "in")
    assert first_answer.at - sent.at >= 0.15  # one-way latency on the region's side


async def test_a_stopped_region_restarts(harness) -> None:
    await harness.provision(PLAN)
    await harness.twin.stop_region("au1")
    silent = await harness.call("au1", "sip:1@acme.sip.au1.twilio.com", wait_final=1.0)
    assert silent.timed_out
    await harness.twin.start_region("au1")
    back = await harness.call("au1", "sip:1@acme.sip.au1.twilio.com", auth=Auth("alice", PASSWORD))
    assert back.statuses[-1] == 200


@pytest.mark.peer
async def test_every_sipp_call_completes_through_ten_percent_loss(harness, tmp_path) -> None:
    sipp = require_tool("sipp")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)],
                                       voice_url='twiml:<Response><Pause length="30"/></Response>'))
    harness.twin.impair_region("br1", loss_percent=10)
    address, port = harness.node_port("br1")
    code, out = await run(
        sipp, f"{address}:{port}", "-sf", str(REPO / "harness/sipp/uac_auth.xml"),
        "-key", "domain", "acme.sip.br1.twilio.com", "-s", "1000", "-au", "alice",
        "-ap", PASSWORD, "-auth_uri", "1000@acme.sip.br1.twilio.com", "-i", "127.0.0.1",
        "-p", str(free_port()), "-m", "20", "-r", "10", "-l", "20", "-recv_timeout", "20s",
        "-timeout", "90s", "-nostdin", cwd=tmp_path, timeout=120,
    )
    assert code == 0, out[-2500:]
    assert harness.twin.nodes["br1"].endpoint.config.impairment.dropped > 0
