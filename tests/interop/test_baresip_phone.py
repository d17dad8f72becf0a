"""baresip 1.0 as a desk phone registered to nothing, dialling the SIP Domain directly."""

from __future__ import annotations

import asyncio

import pytest

from siptwin.harness.pbx import BaresipPhone, Target, received
from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD
from tests.support.peers import need_peers as _need

pytestmark = pytest.mark.peer


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_desk_phone_call_is_authenticated_answered_and_hung_up(harness, tmp_path, transport) -> None:
    _need("baresip")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("sg1", transport)
    phone = BaresipPhone(Target(address, port, "acme.sip.sg1.twilio.com", "alice", PASSWORD,
                                transport), tmp_path / "phone")
    run = await asyncio.to_thread(phone.call, "1000", seconds=3)
    calls = [c for c in harness.twin.calls.all() if c.sid]
    assert calls, run.output[-3000:]
    call = calls[-1]
    seen = received(call)
    assert seen["host"] == "acme.sip.sg1.twilio.com" and seen["region"] == "sg1", seen
    assert call.username == "alice" and call.transport == transport
    assert seen["digest_uri_matches"] is True, seen
    assert {"PCMU", "PCMA"} & set(seen["codecs"]), seen
    assert "ACK" in seen["methods"], seen
    assert call.answered_at is not None, run.output[-3000:]


async def test_desk_phone_with_a_wrong_password_is_refused(harness, tmp_path) -> None:
    _need("baresip")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address, port = harness.node_port("us1")
    phone = BaresipPhone(Target(address, port, "acme.sip.us1.twilio.com", "alice",
                                "Wr0ngPassword9"), tmp_path / "phone")
    run = await asyncio.to_thread(phone.call, "1000", seconds=2)
    calls = harness.twin.calls.all()
    assert calls and not any(c.sid for c in calls), run.output[-3000:]
    assert calls[-1].final_status == 403, [(c.status, c.final_status) for c in calls]
