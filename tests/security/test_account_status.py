"""Finding 5 of issue 15: suspended or closed subaccounts still took calls.

Their tokens were refused by the API, but an authenticated call or REGISTER to their domains
completed. Now the edge refuses both with Twilio's 10001 "Account is not active"
(``inactive_account_status``, 403 by default), and the master account cannot change its own
status (21477), so it cannot lock its operator out across a restart.
"""

from __future__ import annotations

import asyncio

import pytest
from twilio.base.exceptions import TwilioRestException

from siptwin.cloud.store import Store
from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.model.codes import Stage  # noqa
from siptwin.ua.client import Auth
from tests.support import PASSWORD
from tests.support.registration import register
from tests.support.twin import Harness, embedded_twin

URI = "sip:1000@tenant.sip.us1.twilio.com"
ALICE = Auth("alice", PASSWORD)
PLAN = DomainPlan("tenant", voice_url='twiml:<Response><Pause length="1"/></Response>',
                  credentials=[("alice", PASSWORD)], sip_registration=True,
                  registration_credentials=[("alice", PASSWORD)])


async def _call(harness: Harness):
    return await harness.call("us1", URI, auth=ALICE, wait_final=5)


async def _register(harness: Harness):
    """The final answer to a REGISTER (after a 407 when the account is active)."""
    return (await register(harness, host="tenant.sip.us1.twilio.com"))[-1]


def _refused_as_inactive(final) -> bool:
    return (final is not None and final.status == 403
            and (final.headers.get("X-Twilio-Error") or "").startswith("10001 "))


@pytest.mark.asyncio
async def test_suspended_or_closed_subaccount_takes_no_calls_or_registrations(harness) -> None:
    master = harness.client()
    sub = await asyncio.to_thread(lambda: master.api.v2010.accounts.create(friendly_name="tenant"))
    sub_client = sdk_client(harness.twin.api_url, sub.sid, sub.auth_token)
    await asyncio.to_thread(provision, sub_client, PLAN)

    def set_status(status: str) -> None:
        master.api.v2010.accounts(sub.sid).update(status=status)

    active = await _call(harness)
    assert active.established, active.statuses
    assert (await _register(harness)).status == 200

    await asyncio.to_thread(set_status, "suspended")
    suspended = await _call(harness)
    assert _refused_as_inactive(suspended.final), suspended.statuses
    assert 407 not in suspended.statuses and not suspended.established
    record = harness.twin.calls.get(suspended.call_id)
    assert record.decided_by == Stage.ACCOUNT_ACTIVE and record.account_sid == sub.sid
    assert 10001 in {alert.code for alert in record.alerts}
    assert _refused_as_inactive(await _register(harness))

    await asyncio.to_thread(set_status, "active")  # the refusal follows the status, both ways
    assert (await _call(harness)).established
    assert (await _register(harness)).status == 200

    await asyncio.to_thread(set_status, "closed")
    closed = await _call(harness)
    assert _refused_as_inactive(closed.final), closed.statuses
    assert _refused_as_inactive(await _register(harness))
    with pytest.raises(TwilioRestException) as reopened:  # a closed account stays closed
        await asyncio.to_thread(set_status, "active")
    assert (reopened.value.status, reopened.value.code) == (400, 21479)
    assert _refused_as_inactive((await _call(harness)).final)


@pytest.mark.asyncio
async def test_inactive_account_status_is_a_setting(harness) -> None:
    twin = harness.twin
    master = harness.client()
    sub = await asyncio.to_thread(lambda: master.api.v2010.accounts.create(friendly_name="tenant"))
    await asyncio.to_thread(provision, sdk_client(twin.api_url, sub.sid, sub.auth_token), PLAN)
    await asyncio.to_thread(lambda: master.api.v2010.accounts(sub.sid).update(status="suspended"))
    twin.set_fidelity(twin.fidelity.with_overrides({"inactive_account_status": 480}))
    refused = await _call(harness)
    assert refused.final is not None and refused.final.status == 480, refused.statuses
    assert refused.header("X-Twilio-Error").startswith("10001 ")


@pytest.mark.asyncio
async def test_master_account_cannot_suspend_or_close_itself_and_a_restart_keeps_nothing(
    tmp_path,
) -> None:
    state = tmp_path / "state"
    first = embedded_twin(state)
    await first.start()
    try:
        harness = Harness(first)
        master = harness.client()
        sid, token = first.account_sid, first.auth_token
        for status in ("suspended", "closed"):
            with pytest.raises(TwilioRestException) as refused:
                await asyncio.to_thread(master.api.v2010.accounts(sid).update,
                                        status=status, friendly_name="renamed by the refused request")
            assert (refused.value.status, refused.value.code) == (400, 21477), refused.value.msg
        fetched = await asyncio.to_thread(lambda: master.api.v2010.accounts(sid).fetch())
        assert (fetched.status, fetched.friendly_name) == ("active", "siptwin master account")
    finally:
        await first.stop()

    second = embedded_twin(state)
    await second.start()
    try:
        assert (second.account_sid, second.auth_token) == (sid, token)
        client = Harness(second).client()
        again = await asyncio.to_thread(lambda: client.api.v2010.accounts(sid).fetch())
        assert (again.status, again.friendly_name) == ("active", "siptwin master account")
        assert await asyncio.to_thread(lambda: client.api.v2010.account.sip.domains.list()) == []
    finally:
        await second.stop()


def test_a_master_left_suspended_by_an_older_twin_is_active_again_at_start(tmp_path) -> None:
    store = Store.open(tmp_path / "state")
    master = store.ensure_master_account()
    store.update_account(master.sid, status="suspended")  # what the API once allowed
    store.close()
    store = Store.open(tmp_path / "state")
    assert store.ensure_master_account().status == "active"
    store.close()
