"""Credential lists and credentials: CRUD, password policy, HA1-only storage, limits."""

from __future__ import annotations

import hashlib

from twilio.rest import Client

from siptwin.cloud.model import Limits
from siptwin.cloud.view import ControlPlaneView
from tests.support import PASSWORD

from .conftest import Twin, TwinFactory, expect_error


def test_credential_list_create_list_fetch_update_delete(client: Client) -> None:
    created = client.sip.credential_lists.create(friendly_name="staff")
    assert created.sid.startswith("CL")
    assert created.subresource_uris["credentials"].endswith(f"/CredentialLists/{created.sid}/Credentials.json")
    client.sip.credential_lists.create(friendly_name="contractors")
    client.sip.credential_lists.create(friendly_name="guests")
    assert [c.friendly_name for c in client.sip.credential_lists.list(page_size=2)] == [
        "staff", "contractors", "guests"]
    assert client.sip.credential_lists(created.sid).fetch().friendly_name == "staff"
    assert client.sip.credential_lists(created.sid).update(friendly_name="team").friendly_name == "team"
    assert client.sip.credential_lists(created.sid).delete() is True
    expect_error(lambda: client.sip.credential_lists(created.sid).fetch(), 404, 20404)


def test_credential_list_name_required_unique_and_bounded_21240(client: Client) -> None:
    client.sip.credential_lists.create(friendly_name="staff")
    expect_error(lambda: client.sip.credential_lists.create(friendly_name="staff"), 400, 21240)
    expect_error(lambda: client.sip.credential_lists.create(friendly_name=""), 400, 21240)
    expect_error(lambda: client.sip.credential_lists.create(friendly_name="n" * 65), 400, 21240)
    assert len(client.sip.credential_lists.list()) == 1


def test_credential_crud_never_returns_the_password(twin: Twin, client: Client) -> None:
    credential_list = client.sip.credential_lists.create(friendly_name="staff")
    credentials = client.sip.credential_lists(credential_list.sid).credentials
    alice = credentials.create(username="alice", password=PASSWORD)
    assert alice.sid.startswith("CR") and alice.username == "alice"
    assert alice.credential_list_sid == credential_list.sid
    credentials.create(username="bob", password="Another9Secret")
    assert [c.username for c in credentials.list(page_size=1)] == ["alice", "bob"]
    assert credentials(alice.sid).fetch().username == "alice"
    assert credentials(alice.sid).update(password="Changed9Secret").username == "alice"
    assert credentials(alice.sid).delete() is True
    expect_error(lambda: credentials(alice.sid).fetch(), 404, 20404)

    for _, _, response in client.http_client.responses:  # type: ignore[attr-defined]
        assert PASSWORD not in response.text and "password" not in response.text.lower()


def test_credentials_are_stored_only_as_ha1_over_sip_twilio_com(twin: Twin, client: Client) -> None:
    credential_list = client.sip.credential_lists.create(friendly_name="staff")
    client.sip.credential_lists(credential_list.sid).credentials.create(
        username="alice", password=PASSWORD)
    domain = client.sip.domains.create(domain_name="ha1.sip.twilio.com")
    client.sip.domains(domain.sid).auth.calls.credential_list_mappings.create(
        credential_list_sid=credential_list.sid)

    snapshot = ControlPlaneView(twin.store).find_domain("ha1.sip.twilio.com")
    assert snapshot is not None
    material = f"alice:sip.twilio.com:{PASSWORD}".encode()
    stored = snapshot.call_credentials["alice"]
    assert stored.ha1_md5 == hashlib.md5(material).hexdigest()
    assert stored.ha1_sha256 == hashlib.sha256(material).hexdigest()
    database = twin.store.path.read_bytes() + twin.store.path.with_name(
        twin.store.path.name + "-wal").read_bytes()
    assert PASSWORD.encode() not in database


def test_password_policy_and_username_rules_are_21243(client: Client) -> None:
    credential_list = client.sip.credential_lists.create(friendly_name="staff")
    credentials = client.sip.credential_lists(credential_list.sid).credentials
    for weak in ("Short7Pass", "alllowercase99", "ALLUPPERCASE99", "NoDigitsHereAtAll", ""):
        error = expect_error(
            lambda weak=weak: credentials.create(username="alice", password=weak), 400, 21243)
        assert not weak or weak not in error.msg
    expect_error(lambda: credentials.create(username="u" * 33, password=PASSWORD), 400, 21243)
    expect_error(lambda: credentials.create(username="", password=PASSWORD), 400, 21243)
    expect_error(lambda: credentials.create(username="has space", password=PASSWORD), 400, 21243)
    alice = credentials.create(username="alice", password=PASSWORD)
    expect_error(lambda: credentials.create(username="alice", password=PASSWORD), 400, 21243)
    expect_error(lambda: credentials(alice.sid).update(password="weak"), 400, 21243)
    assert [c.username for c in credentials.list()] == ["alice"]


def test_credential_limits_are_21239_and_21242(twin_factory: TwinFactory) -> None:
    twin = twin_factory(Limits(credential_lists_per_account=1, credentials_per_list=1))
    client = twin.client()
    credential_list = client.sip.credential_lists.create(friendly_name="only")
    expect_error(lambda: client.sip.credential_lists.create(friendly_name="second"), 400, 21239)
    credentials = client.sip.credential_lists(credential_list.sid).credentials
    credentials.create(username="alice", password=PASSWORD)
    expect_error(lambda: credentials.create(username="bob", password=PASSWORD), 400, 21242)


def test_mapped_credential_list_cannot_be_deleted_21241(client: Client) -> None:
    credential_list = client.sip.credential_lists.create(friendly_name="staff")
    domain = client.sip.domains.create(domain_name="cl.sip.twilio.com")
    registrations = client.sip.domains(domain.sid).auth.registrations.credential_list_mappings
    registrations.create(credential_list_sid=credential_list.sid)
    expect_error(lambda: client.sip.credential_lists(credential_list.sid).delete(), 400, 21241)
    registrations(credential_list.sid).delete()
    assert client.sip.credential_lists(credential_list.sid).delete() is True


def test_spec_3_5_passwords_have_no_maximum_length(twin: Twin, client: Client) -> None:
    """Spec §3.5 states a minimum (12, digit, upper, lower) and no maximum; the twin used to
    refuse passwords over an undocumented 128 characters."""
    long_password = "Harbour7Lights" * 30  # 420 characters
    credential_list = client.sip.credential_lists.create(friendly_name="long")
    credentials = client.sip.credential_lists(credential_list.sid).credentials
    alice = credentials.create(username="alice", password=long_password)
    assert credentials(alice.sid).update(password=long_password + "x").username == "alice"
    domain = client.sip.domains.create(domain_name="long.sip.twilio.com")
    client.sip.domains(domain.sid).auth.calls.credential_list_mappings.create(
        credential_list_sid=credential_list.sid)
    stored = ControlPlaneView(twin.store).find_domain("long.sip.twilio.com").call_credentials
    material = f"alice:sip.twilio.com:{long_password}x".encode()
    assert stored["alice"].ha1_md5 == hashlib.md5(material).hexdigest()
