"""Accounts: master bootstrap, sub-accounts, and who may reach whose resources."""

from __future__ import annotations

from siptwin.cloud.store import Store

from .conftest import Twin, expect_error, expect_list_error


def test_master_account_is_generated_once_and_reused(tmp_path: object) -> None:
    from pathlib import Path

    state = Path(str(tmp_path)) / "state"
    first = Store.open(state)
    generated = first.ensure_master_account()
    first.close()
    again = Store.open(state)
    assert again.ensure_master_account() == generated
    again.close()


def test_master_account_can_come_from_the_environment_values(tmp_path: object) -> None:
    from pathlib import Path

    store = Store.open(Path(str(tmp_path)) / "state")
    sid, token = "AC" + "1" * 32, "f" * 32
    account = store.ensure_master_account(sid, token)
    assert (account.sid, account.auth_token, account.is_subaccount) == (sid, token, False)
    store.close()


def test_subaccounts_are_created_listed_fetched_and_renamed(twin: Twin) -> None:
    client = twin.client()
    created = client.api.v2010.accounts.create(friendly_name="branch office")
    assert created.owner_account_sid == twin.master.sid
    assert created.status == "active" and len(created.auth_token) == 32
    assert {a.sid for a in client.api.v2010.accounts.list()} == {twin.master.sid, created.sid}
    assert [a.sid for a in client.api.v2010.accounts.list(friendly_name="branch office")] == [
        created.sid]
    assert client.api.v2010.accounts(created.sid).fetch().friendly_name == "branch office"
    renamed = client.api.v2010.accounts(created.sid).update(friendly_name="renamed")
    assert renamed.friendly_name == "renamed"


def test_parent_reaches_subaccount_resources_but_not_the_reverse(twin: Twin) -> None:
    sub_account = twin.subaccount()
    parent = twin.client()
    sub = twin.client(sub_account)
    domain = parent.api.v2010.accounts(sub_account.sid).sip.domains.create(
        domain_name="child.sip.twilio.com")
    assert domain.account_sid == sub_account.sid
    assert [d.sid for d in sub.sip.domains.list()] == [domain.sid]
    assert parent.sip.domains.list() == []  # the master's own list is separate

    expect_list_error(
        sub, lambda: sub.api.v2010.accounts(twin.master.sid).sip.domains.list(), 401, 20003)
    expect_error(lambda: sub.api.v2010.accounts(twin.master.sid).fetch(), 401, 20003)
    sibling = twin.client(twin.subaccount("sibling"))
    expect_list_error(
        sibling, lambda: sibling.api.v2010.accounts(sub_account.sid).sip.domains.list(), 401, 20003)
    assert [a.sid for a in sub.api.v2010.accounts.list()] == [sub_account.sid]


def test_subaccount_cannot_create_subaccounts(twin: Twin) -> None:
    sub = twin.client(twin.subaccount())
    expect_error(lambda: sub.api.v2010.accounts.create(friendly_name="grandchild"), 403, 20403)


def test_wrong_token_and_unknown_account_are_401_20003(twin: Twin) -> None:
    bad = twin.client(token="0" * 32)
    expect_list_error(bad, lambda: bad.sip.domains.list(), 401, 20003)
    response = bad.http_client.responses[-1][2]  # type: ignore[attr-defined]
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    assert response.headers["X-Twilio-Error-Code"] == "20003"


def test_suspended_subaccount_cannot_authenticate(twin: Twin) -> None:
    sub_account = twin.subaccount()
    twin.client().api.v2010.accounts(sub_account.sid).update(status="suspended")
    sub = twin.client(sub_account)
    expect_list_error(sub, lambda: sub.sip.domains.list(), 401, 20003)
