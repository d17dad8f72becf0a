"""Domain mappings: the legacy paths, Auth/Calls (sharing one store with legacy) and
Auth/Registrations; auth_type transitions."""

from __future__ import annotations

from twilio.rest import Client

from .conftest import expect_error, expect_list_error


def _domain_and_lists(client: Client) -> tuple[str, str, str]:
    domain = client.sip.domains.create(domain_name="map.sip.twilio.com")
    acl = client.sip.ip_access_control_lists.create(friendly_name="office")
    credential_list = client.sip.credential_lists.create(friendly_name="staff")
    return domain.sid, acl.sid, credential_list.sid


def test_legacy_credential_list_mapping_crud(client: Client) -> None:
    domain_sid, _, list_sid = _domain_and_lists(client)
    mappings = client.sip.domains(domain_sid).credential_list_mappings
    created = mappings.create(credential_list_sid=list_sid)
    assert created.sid == list_sid and created.domain_sid == domain_sid
    assert created.friendly_name == "staff"
    assert created.uri.endswith(f"/Domains/{domain_sid}/CredentialListMappings/{list_sid}.json")
    assert [m.sid for m in mappings.list()] == [list_sid]
    assert mappings(list_sid).fetch().sid == list_sid
    assert mappings(list_sid).delete() is True
    expect_error(lambda: mappings(list_sid).fetch(), 404, 20404)


def test_legacy_ip_acl_mapping_crud(client: Client) -> None:
    domain_sid, acl_sid, _ = _domain_and_lists(client)
    mappings = client.sip.domains(domain_sid).ip_access_control_list_mappings
    created = mappings.create(ip_access_control_list_sid=acl_sid)
    assert (created.sid, created.friendly_name) == (acl_sid, "office")
    assert [m.sid for m in mappings.list()] == [acl_sid]
    assert mappings(acl_sid).fetch().domain_sid == domain_sid
    assert mappings(acl_sid).delete() is True
    assert mappings.list() == []


def test_auth_calls_mappings_crud_use_the_contents_key(client: Client) -> None:
    domain_sid, acl_sid, list_sid = _domain_and_lists(client)
    calls = client.sip.domains(domain_sid).auth.calls
    credential_mapping = calls.credential_list_mappings.create(credential_list_sid=list_sid)
    acl_mapping = calls.ip_access_control_list_mappings.create(ip_access_control_list_sid=acl_sid)
    assert (credential_mapping.sid, acl_mapping.sid) == (list_sid, acl_sid)
    assert [m.sid for m in calls.credential_list_mappings.list()] == [list_sid]
    assert '"contents":[' in client.http_client.last_body  # type: ignore[attr-defined]
    assert [m.sid for m in calls.ip_access_control_list_mappings.list()] == [acl_sid]
    assert calls.credential_list_mappings(list_sid).fetch().friendly_name == "staff"
    assert calls.ip_access_control_list_mappings(acl_sid).fetch().friendly_name == "office"
    assert calls.credential_list_mappings(list_sid).delete() is True
    assert calls.ip_access_control_list_mappings(acl_sid).delete() is True
    assert calls.credential_list_mappings.list() == []


def test_auth_registrations_mapping_crud_is_independent_of_call_mappings(client: Client) -> None:
    domain_sid, _, list_sid = _domain_and_lists(client)
    domain = client.sip.domains(domain_sid)
    domain.auth.calls.credential_list_mappings.create(credential_list_sid=list_sid)
    registrations = domain.auth.registrations.credential_list_mappings
    assert registrations.create(credential_list_sid=list_sid).sid == list_sid
    assert [m.sid for m in registrations.list()] == [list_sid]
    assert registrations(list_sid).fetch().sid == list_sid
    expect_error(lambda: registrations.create(credential_list_sid=list_sid), 400, 21231)
    assert domain.fetch().auth_type == "CREDENTIAL_LIST"
    assert registrations(list_sid).delete() is True
    assert [m.sid for m in domain.auth.calls.credential_list_mappings.list()] == [list_sid]


def test_legacy_and_auth_calls_share_one_store(client: Client) -> None:
    domain_sid, acl_sid, list_sid = _domain_and_lists(client)
    domain = client.sip.domains(domain_sid)
    domain.ip_access_control_list_mappings.create(ip_access_control_list_sid=acl_sid)
    error = expect_error(
        lambda: domain.auth.calls.ip_access_control_list_mappings.create(
            ip_access_control_list_sid=acl_sid), 400, 21231)
    assert "already associated" in error.msg
    assert [m.sid for m in domain.auth.calls.ip_access_control_list_mappings.list()] == [acl_sid]
    domain.auth.calls.credential_list_mappings.create(credential_list_sid=list_sid)
    expect_error(
        lambda: domain.credential_list_mappings.create(credential_list_sid=list_sid), 400, 21231)
    assert domain.credential_list_mappings(list_sid).delete() is True
    assert domain.auth.calls.credential_list_mappings.list() == []


def test_auth_type_follows_call_mappings(client: Client) -> None:
    domain_sid, acl_sid, list_sid = _domain_and_lists(client)
    domain = client.sip.domains(domain_sid)
    assert domain.fetch().auth_type == ""
    domain.auth.registrations.credential_list_mappings.create(credential_list_sid=list_sid)
    assert domain.fetch().auth_type == ""  # registration mappings do not count
    domain.auth.calls.ip_access_control_list_mappings.create(ip_access_control_list_sid=acl_sid)
    assert domain.fetch().auth_type == "IP_ACL"
    domain.auth.calls.credential_list_mappings.create(credential_list_sid=list_sid)
    assert domain.fetch().auth_type == "CREDENTIAL_LIST,IP_ACL"
    domain.auth.calls.ip_access_control_list_mappings(acl_sid).delete()
    assert domain.fetch().auth_type == "CREDENTIAL_LIST"


def test_mapping_an_unknown_or_malformed_list(client: Client) -> None:
    domain_sid, acl_sid, _ = _domain_and_lists(client)
    domain = client.sip.domains(domain_sid)
    expect_error(
        lambda: domain.auth.calls.credential_list_mappings.create(
            credential_list_sid="CL" + "0" * 32), 404, 20404)
    expect_error(
        lambda: domain.auth.calls.credential_list_mappings.create(credential_list_sid=acl_sid),
        400, 21231)
    expect_error(
        lambda: domain.auth.calls.credential_list_mappings.create(credential_list_sid="CLnope"),
        400, 21231)
    assert domain.fetch().auth_type == ""


def test_mappings_under_unknown_domain_are_404(client: Client) -> None:
    missing = client.sip.domains("SD" + "f" * 32)
    expect_list_error(client, lambda: missing.auth.calls.credential_list_mappings.list(), 404, 20404)
    expect_error(lambda: missing.credential_list_mappings("CL" + "0" * 32).fetch(), 404, 20404)


def test_deleting_a_domain_removes_its_mappings(client: Client) -> None:
    domain_sid, acl_sid, _ = _domain_and_lists(client)
    client.sip.domains(domain_sid).ip_access_control_list_mappings.create(
        ip_access_control_list_sid=acl_sid)
    assert client.sip.domains(domain_sid).delete() is True
    assert client.sip.ip_access_control_lists(acl_sid).delete() is True  # no longer mapped
