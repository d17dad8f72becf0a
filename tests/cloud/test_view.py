"""The read interface for region nodes: immediate in-process visibility, and a change feed
another process can follow on the same SQLite file."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from siptwin.cloud.view import ControlPlaneView

from .conftest import Twin


def test_api_changes_are_visible_through_the_view_at_once(twin: Twin) -> None:
    view = ControlPlaneView(twin.store)
    client = twin.client()
    assert view.find_domain("live.sip.twilio.com") is None
    start = view.version()

    domain = client.sip.domains.create(
        domain_name="live.sip.twilio.com", voice_url="https://hooks.example/voice")
    snapshot = view.find_domain("live.sip.twilio.com")
    assert snapshot is not None
    assert (snapshot.sid, snapshot.account_sid, snapshot.region) == (
        domain.sid, twin.master.sid, "us1")
    assert snapshot.voice_url == "https://hooks.example/voice"
    assert snapshot.auth_token == twin.master.auth_token
    assert not snapshot.has_call_authentication

    acl = client.sip.ip_access_control_lists.create(friendly_name="office")
    client.sip.domains(domain.sid).auth.calls.ip_access_control_list_mappings.create(
        ip_access_control_list_sid=acl.sid)
    client.sip.ip_access_control_lists(acl.sid).ip_addresses.create(
        friendly_name="lan", ip_address="192.0.2.77", cidr_prefix_length=28)
    snapshot = view.find_domain("live.sip.twilio.com")
    assert snapshot is not None
    assert snapshot.call_acl_networks == (ipaddress.IPv4Network("192.0.2.64/28"),)
    assert [(a.sid, a.friendly_name) for a in snapshot.call_acls] == [(acl.sid, "office")]

    client.sip.domains(domain.sid).update(secure=True)
    assert view.find_domain("live.sip.twilio.com").secure is True  # type: ignore[union-attr]

    changes = view.changes_since(start)
    assert [c.kind for c in changes] == [
        "domain.created", "ip_access_control_list.created", "calls_mapping.created",
        "ip_address.created", "domain.updated",
    ]
    assert [c.version for c in changes] == sorted({c.version for c in changes})
    assert view.version() == changes[-1].version
    assert changes[2].parent_sid == domain.sid and changes[2].sid == acl.sid

    client.sip.domains(domain.sid).delete()
    assert view.find_domain("live.sip.twilio.com") is None


def test_registration_and_call_credentials_are_separate(twin: Twin) -> None:
    client = twin.client()
    domain = client.sip.domains.create(domain_name="reg.sip.twilio.com", sip_registration=True)
    calls = client.sip.credential_lists.create(friendly_name="callers")
    devices = client.sip.credential_lists.create(friendly_name="devices")
    client.sip.credential_lists(calls.sid).credentials.create(username="alice", password="Harbour7Lights")
    client.sip.credential_lists(devices.sid).credentials.create(username="desk1", password="Harbour7Lights")
    auth = client.sip.domains(domain.sid).auth
    auth.calls.credential_list_mappings.create(credential_list_sid=calls.sid)
    auth.registrations.credential_list_mappings.create(credential_list_sid=devices.sid)
    snapshot = ControlPlaneView(twin.store).find_domain("reg.sip.twilio.com")
    assert snapshot is not None and snapshot.sip_registration
    assert list(snapshot.call_credentials) == ["alice"]
    assert snapshot.call_credentials["alice"].list_sid == calls.sid
    assert list(snapshot.registration_credentials) == ["desk1"]


def test_account_auth_tokens_are_readable(twin: Twin) -> None:
    view = ControlPlaneView(twin.store)
    sub_account = twin.subaccount()
    assert view.account_auth_token(twin.master.sid) == twin.master.auth_token
    assert view.account_auth_token(sub_account.sid) == sub_account.auth_token
    assert view.account_auth_token("AC" + "9" * 32) is None
    for region in ("ie1", "au1"):  # each processing region has its own token (spec 2.1)
        token = view.account_auth_token(sub_account.sid, region)
        assert token == twin.store.auth_token(sub_account.sid, region)
        assert token is not None and token != sub_account.auth_token
    assert view.account_auth_token(twin.master.sid, "sg1") is None  # processes no SIP


FOLLOWER = textwrap.dedent(
    """
    import json, sys
    from siptwin.cloud.view import ControlPlaneView
    view = ControlPlaneView(sys.argv[1])
    snapshot = view.find_domain("far.sip.twilio.com")
    print(json.dumps({
        "version": view.version(),
        "kinds": [change.kind for change in view.changes_since(0)],
        "domain": snapshot.sid if snapshot else None,
        "networks": [str(n) for n in snapshot.call_acl_networks] if snapshot else None,
    }))
    """
)


def _follow(twin: Twin) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", FOLLOWER, str(twin.store.path.parent)],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(completed.stdout)


def test_another_process_follows_the_change_feed(twin: Twin) -> None:
    client = twin.client()
    before = _follow(twin)
    assert before["domain"] is None

    domain = client.sip.domains.create(domain_name="far.sip.twilio.com")
    acl = client.sip.ip_access_control_lists.create(friendly_name="far")
    client.sip.ip_access_control_lists(acl.sid).ip_addresses.create(
        friendly_name="pbx", ip_address="198.51.100.9")
    client.sip.domains(domain.sid).ip_access_control_list_mappings.create(
        ip_access_control_list_sid=acl.sid)

    after = _follow(twin)
    assert after["domain"] == domain.sid
    assert after["networks"] == ["198.51.100.9/32"]
    assert int(after["version"]) > int(before["version"])  # type: ignore[call-overload]
    assert after["kinds"][-4:] == [  # type: ignore[index]
        "domain.created", "ip_access_control_list.created", "ip_address.created",
        "calls_mapping.created",
    ]


def test_a_schema_the_view_cannot_read_is_an_error_not_an_empty_answer(tmp_path) -> None:
    # Diagnostics and DNS ask the view; a table they rely on going missing (a bad migration)
    # must surface, not read as "no ACL contains this address" or "no domains".
    from siptwin.cloud.store import Store
    from siptwin.diagnostics import diagnose_call
    from siptwin.model.calls import Call

    store = Store.open(tmp_path)
    store.ensure_master_account(None, None)
    view = ControlPlaneView(store)
    assert view.routed_domain_names() == [] and view.acls_containing("192.0.2.1", None) == []
    with store._connection:  # noqa: SLF001 (simulating a broken schema)
        store._connection.execute("DROP TABLE domain_routes")
    with pytest.raises(sqlite3.Error):
        view.routed_domain_names()
    call = Call("c1@pbx", "us1", "192.0.2.1", 5060, "udp", 0.0, domain_name="acme.sip.twilio.com")
    with pytest.raises(sqlite3.Error):
        diagnose_call(call, control=view)
    view.close()
    store.close()
