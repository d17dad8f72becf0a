"""IP access control lists and their IpAddresses through the official SDK."""

from __future__ import annotations

from twilio.rest import Client

from siptwin.cloud.model import Limits

from .conftest import TwinFactory, expect_error, expect_list_error


def test_ip_acl_create_list_fetch_update_delete(client: Client) -> None:
    acl = client.sip.ip_access_control_lists.create(friendly_name="office")
    assert acl.sid.startswith("AL") and len(acl.sid) == 34
    assert acl.subresource_uris["ip_addresses"].endswith(f"/IpAccessControlLists/{acl.sid}/IpAddresses.json")
    for i in range(4):
        client.sip.ip_access_control_lists.create(friendly_name=f"branch {i}")
    names = [a.friendly_name for a in client.sip.ip_access_control_lists.list(page_size=2)]
    assert names == ["office", "branch 0", "branch 1", "branch 2", "branch 3"]
    assert client.sip.ip_access_control_lists(acl.sid).fetch().friendly_name == "office"
    assert client.sip.ip_access_control_lists(acl.sid).update(friendly_name="hq").friendly_name == "hq"
    assert client.sip.ip_access_control_lists(acl.sid).delete() is True
    expect_error(lambda: client.sip.ip_access_control_lists(acl.sid).fetch(), 404, 20404)


def test_ip_acl_friendly_name_is_required_and_unique_21235(client: Client) -> None:
    client.sip.ip_access_control_lists.create(friendly_name="office")
    expect_error(lambda: client.sip.ip_access_control_lists.create(friendly_name="office"), 400, 21235)
    expect_error(lambda: client.sip.ip_access_control_lists.create(friendly_name=""), 400, 21235)
    expect_error(
        lambda: client.sip.ip_access_control_lists.create(friendly_name="x" * 256), 400, 21235
    )
    other = client.sip.ip_access_control_lists.create(friendly_name="other")
    expect_error(
        lambda: client.sip.ip_access_control_lists(other.sid).update(friendly_name="office"),
        400, 21235,
    )
    assert len(client.sip.ip_access_control_lists.list()) == 2


def test_ip_address_crud_with_default_prefix_32(client: Client) -> None:
    acl = client.sip.ip_access_control_lists.create(friendly_name="office")
    addresses = client.sip.ip_access_control_lists(acl.sid).ip_addresses
    entry = addresses.create(friendly_name="pbx", ip_address="203.0.113.10")
    assert entry.sid.startswith("IP")
    assert entry.cidr_prefix_length == 32
    assert entry.ip_access_control_list_sid == acl.sid
    wide = addresses.create(friendly_name="range", ip_address="198.51.100.0", cidr_prefix_length=24)
    assert wide.cidr_prefix_length == 24
    assert [e.ip_address for e in addresses.list(page_size=1)] == ["203.0.113.10", "198.51.100.0"]
    updated = addresses(entry.sid).update(cidr_prefix_length=30, friendly_name="pbx pair")
    assert (updated.cidr_prefix_length, updated.friendly_name, updated.ip_address) == (
        30, "pbx pair", "203.0.113.10")
    assert addresses(entry.sid).fetch().cidr_prefix_length == 30
    assert addresses(entry.sid).delete() is True
    expect_error(lambda: addresses(entry.sid).fetch(), 404, 20404)


def test_invalid_ip_address_parameters_are_21238(client: Client) -> None:
    acl = client.sip.ip_access_control_lists.create(friendly_name="office")
    addresses = client.sip.ip_access_control_lists(acl.sid).ip_addresses
    for bad in (
        {"friendly_name": "v6", "ip_address": "2001:db8::1"},
        {"friendly_name": "wild", "ip_address": "10.0.0.*"},
        {"friendly_name": "short", "ip_address": "10.0.0"},
        {"friendly_name": "zero", "ip_address": "10.0.0.1", "cidr_prefix_length": 0},
        {"friendly_name": "big", "ip_address": "10.0.0.1", "cidr_prefix_length": 33},
        {"friendly_name": "", "ip_address": "10.0.0.1"},
        {"friendly_name": "nameless", "ip_address": ""},
    ):
        expect_error(lambda bad=bad: addresses.create(**bad), 400, 21238)
    assert addresses.list() == []


def test_duplicate_ip_address_in_one_list_is_21235(client: Client) -> None:
    acl = client.sip.ip_access_control_lists.create(friendly_name="office")
    addresses = client.sip.ip_access_control_lists(acl.sid).ip_addresses
    addresses.create(friendly_name="a", ip_address="192.0.2.1")
    expect_error(lambda: addresses.create(friendly_name="b", ip_address="192.0.2.1"), 400, 21235)
    other = addresses.create(friendly_name="c", ip_address="192.0.2.2")
    expect_error(lambda: addresses(other.sid).update(ip_address="192.0.2.1"), 400, 21235)


def test_address_and_list_limits_are_21237_and_21255(twin_factory: TwinFactory) -> None:
    twin = twin_factory(Limits(addresses_per_ip_acl=2, ip_acls_per_account=2))
    client = twin.client()
    acl = client.sip.ip_access_control_lists.create(friendly_name="one")
    client.sip.ip_access_control_lists.create(friendly_name="two")
    expect_error(lambda: client.sip.ip_access_control_lists.create(friendly_name="three"), 400, 21255)
    addresses = client.sip.ip_access_control_lists(acl.sid).ip_addresses
    addresses.create(friendly_name="a", ip_address="192.0.2.1")
    addresses.create(friendly_name="b", ip_address="192.0.2.2")
    expect_error(lambda: addresses.create(friendly_name="c", ip_address="192.0.2.3"), 400, 21237)


def test_mapped_ip_acl_cannot_be_deleted_21236(client: Client) -> None:
    acl = client.sip.ip_access_control_lists.create(friendly_name="office")
    domain = client.sip.domains.create(domain_name="acl.sip.twilio.com")
    client.sip.domains(domain.sid).ip_access_control_list_mappings.create(
        ip_access_control_list_sid=acl.sid
    )
    expect_error(lambda: client.sip.ip_access_control_lists(acl.sid).delete(), 400, 21236)
    client.sip.domains(domain.sid).ip_access_control_list_mappings(acl.sid).delete()
    assert client.sip.ip_access_control_lists(acl.sid).delete() is True


def test_ip_address_under_unknown_list_is_404(client: Client) -> None:
    missing = "AL" + "0" * 32
    expect_error(
        lambda: client.sip.ip_access_control_lists(missing).ip_addresses.create(
            friendly_name="a", ip_address="192.0.2.1"), 404, 20404,
    )
    expect_list_error(
        client, lambda: client.sip.ip_access_control_lists(missing).ip_addresses.list(), 404, 20404
    )
