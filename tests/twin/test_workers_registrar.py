"""``siptwin up --workers 2``: a device registered through one process is dialled by a
``<Dial><Sip>`` that another process handles (the processes share one bindings file)."""

from __future__ import annotations

import asyncio

import pytest

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.sip.sdp import make_offer
from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD, free_port
from tests.support.cli import printed_value, recent_calls, run_siptwin
from tests.support.twin import worker_network

pytestmark = pytest.mark.usefixtures("catalogue_addresses")  # tests/conftest.py

DOMAIN = "acme.sip.twilio.com"
CALLS = 8  # each from its own source port: the kernel spreads them over both processes


async def test_a_device_registered_through_one_worker_is_dialled_from_the_other(tmp_path):
    address = worker_network().removesuffix(".0/24") + ".57"
    state, api_port = tmp_path / "state", free_port()
    started = run_siptwin("up", "--detach", "--workers", "2", "--regions", "us1", "--state",
                           str(state), "--api-port", str(api_port), "--dns-port", str(free_port()),
                           "--region-address", f"us1={address}")
    assert started.returncode == 0, started.stdout + started.stderr
    phone = SipClient("127.0.0.1", "udp")
    try:
        sid = printed_value(started.stdout, "TWILIO_ACCOUNT_SID")
        token = printed_value(started.stdout, "TWILIO_AUTH_TOKEN")
        api = f"http://127.0.0.1:{api_port}"
        await asyncio.to_thread(provision, sdk_client(api, sid, token), DomainPlan(
            "acme", acl=["127.0.0.1"], sip_registration=True,
            registration_credentials=[("alice", PASSWORD)],
            voice_url=f"twiml:<Response><Dial timeout=\"5\"><Sip>sip:alice@{DOMAIN}</Sip>"
                      "</Dial></Response>"))
        await phone.start()
        phone.answer_calls(make_offer("127.0.0.1", free_port(), 7), status=200, after=0.05)
        registered = await phone.request(
            "REGISTER", address, 5060, f"sip:{DOMAIN}", to_uri=f"sip:alice@{DOMAIN}",
            headers=[("Contact", f"<sip:alice@127.0.0.1:{phone.local_port}>"),
                     ("Expires", "600")], auth=Auth("alice", PASSWORD))
        assert registered[-1].status == 200

        async def call() -> bool:
            async with SipClient("127.0.0.1", "udp") as caller:
                result = await caller.invite(address, 5060, "sip:1@acme.sip.us1.twilio.com",
                                             hold=1.0)
            return result.established

        answered = await asyncio.gather(*(call() for _ in range(CALLS)))
        assert all(answered)
        await asyncio.sleep(1.0)  # workers send their records every 0.2 s
        records = await asyncio.to_thread(recent_calls, api, sid, token)
    finally:
        await phone.close()
        stopped = run_siptwin("down", "--state", str(state))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    calls = [r for r in records if r.get("sid")]
    assert len(calls) == CALLS
    assert {r["process"] for r in calls} == {0, 1}, [r["process"] for r in calls]
    # Every call's <Dial> reached alice, whichever process took the call.
    assert len([c for c in phone.incoming if c.answered]) == CALLS, \
        [(r["process"], r.get("notes")) for r in calls]
