"""Finding 3 of issue 15, SIP side: a stranger inside someone else's call.

In-dialog BYE and INFO were matched by Call-ID alone, from any address: a host outside the
domain's IP ACL injected DTMF into a listed caller's call and hung it up. Now a request
belongs to a dialog only with its Call-ID and both tags (RFC 3261 §12.2.2), and only from the
caller's address or Contact; anything else is 481 and the call goes on.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions.node import CallSession
from tests.support.rawsip import RawUac, statuses
from tests.support.twin import worker_network

pytestmark = pytest.mark.asyncio

URI = "sip:1000@acme.sip.us1.twilio.com"


class Keeps:
    """Answers at once and keeps the session, so the test sees the DTMF it was given."""

    def __init__(self) -> None:
        self.sessions: list[CallSession] = []

    async def run(self, session: CallSession) -> None:
        self.sessions.append(session)
        await session.answer()
        await session.ended.wait()


def _stranger_address() -> str:
    return str(ipaddress.ip_network(worker_network()).network_address + 202)


async def test_bye_and_info_from_another_address_get_481_and_the_call_goes_on(harness) -> None:
    handler = Keeps()
    harness.twin.handler = handler
    for node in harness.twin.nodes.values():
        node.handler = handler
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"]))
    node = harness.node_port("us1")
    async with RawUac("127.0.0.1") as caller, RawUac(_stranger_address()) as stranger:
        leg = caller.leg(URI)
        invite = caller.invite(leg)
        got = await caller.transact(invite, node)
        assert statuses(got) == [100, 180, 200], statuses(got)
        ok = got[-1]
        caller.ack_success(leg, invite, ok, node)
        await asyncio.sleep(0.1)

        # The stranger knows the Call-ID and both tags (as a sniffer on the path would).
        dtmf = [("Content-Type", "application/dtmf-relay")]
        for method, body in (("INFO", b"Signal=5\r\nDuration=160\r\n"), ("BYE", b"")):
            request = stranger.in_dialog(leg, method, ok, headers=dtmf if body else (), body=body)
            assert statuses(await stranger.transact(request, node)) == [481], method
        # ... or only the Call-ID, with made-up tags, from the caller's own address.
        wrong = caller.request(leg, "BYE", to_value=ok.headers.get("To").split(";tag=")[0]
                               + ";tag=guessed")
        assert statuses(await caller.transact(wrong, node)) == [481]

        record = harness.twin.calls.get(leg.call_id)
        assert record is not None and record.status == "in-progress"
        assert handler.sessions[0].dtmf.empty()
        assert any("was refused (481)" in note for note in record.notes)

        # The caller itself still reaches its call.
        info = caller.in_dialog(leg, "INFO", ok, headers=dtmf, body=b"Signal=7\r\nDuration=160\r\n")
        assert statuses(await caller.transact(info, node)) == [200]
        assert handler.sessions[0].dtmf.get_nowait() == "7"
        bye = caller.in_dialog(leg, "BYE", ok)
        assert statuses(await caller.transact(bye, node)) == [200]
        assert record.status == "completed"
