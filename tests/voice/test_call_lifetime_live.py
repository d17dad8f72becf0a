"""An ended call's objects are freed with their last reference, not left as reference cycles
for the cyclic collector: a server under load collects its oldest generation rarely, so
cycles of ended calls pile up (issue 18: about 10 KB per call under SIPp)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions.node import CallSession, Dialog
from siptwin.voice.interpreter import CallRun
from siptwin.voice.media import MediaStream

PER_CALL = (CallSession, CallRun, Dialog, MediaStream)


@pytest.mark.parametrize("document, hold, hang_up", [
    ('<Response><Pause length="60"/></Response>', 0.3, True),  # the caller's BYE (SIPp's)
    ("<Response><Say>Goodbye</Say></Response>", 10.0, False),  # the twin's BYE after it
])
async def test_an_ended_call_leaves_no_reference_cycle(harness, document, hold, hang_up):
    await harness.provision(DomainPlan("acme", voice_url=f"twiml:{document}",
                                       acl=["127.0.0.1"]))
    node = harness.twin.nodes["us1"]
    gc.collect()
    gc.disable()  # only reference counting frees anything from here on
    try:
        result = await harness.call("us1", "sip:1@acme.sip.twilio.com", hold=hold,
                                    hang_up=hang_up)
        assert result.established
        for _ in range(500):  # the voice layer finishes the call on its own task
            if not node._tasks:
                break
            await asyncio.sleep(0.01)
        assert not node._tasks
        assert harness.twin.calls.get(result.call_id).status == "completed"
        left = [type(o).__name__ for o in gc.get_objects() if isinstance(o, PER_CALL)]
        assert left == []
    finally:
        gc.enable()
