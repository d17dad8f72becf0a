"""A customer SBC with two localized URIs keeps completing calls when its first edge dies."""

from __future__ import annotations

import asyncio

import pytest

from siptwin.harness.pbx import KamailioFailoverSbc, Target
from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD
from tests.support.peers import need_peers as _need

pytestmark = pytest.mark.peer


async def test_calls_fail_over_to_the_second_edge_when_the_first_is_stopped(harness, tmp_path) -> None:
    _need("kamailio", "sipp")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    ie1, de1 = harness.node_port("ie1"), harness.node_port("de1")
    sbc = KamailioFailoverSbc(Target(*ie1, "acme.sip.ie1.twilio.com", "alice", PASSWORD),
                              Target(*de1, "acme.sip.de1.twilio.com", "alice", PASSWORD),
                              tmp_path / "sbc")
    await asyncio.to_thread(sbc.start)
    try:
        healthy = await asyncio.to_thread(sbc.call, "1000")
        assert healthy.exit == 0, healthy.output[-1500:] + sbc.log()[-2000:]
        await harness.twin.stop_region("ie1")
        failover = await asyncio.to_thread(sbc.call, "1000", calls=3, timeout=40)
    finally:
        await asyncio.to_thread(sbc.stop)
    assert failover.exit == 0, failover.output[-1500:] + sbc.log()[-3000:]
    answered = [c for c in harness.twin.calls.all() if c.sid and c.status == "completed"]
    assert [c.region for c in answered] == ["ie1", "de1", "de1", "de1"]
    assert all(c.username == "alice" for c in answered)
