"""Where regions listen: the shipped catalogue, ``--listen`` and ``--region-address``."""

from __future__ import annotations

from pathlib import Path

import pytest

from siptwin.regions.catalogue import (
    Catalogue,
    CatalogueError,
    default_catalogue_dir,
    parse_region_addresses,
)


@pytest.fixture(scope="module")
def shipped() -> Catalogue:
    return Catalogue.load(default_catalogue_dir())


def test_listen_puts_every_region_on_one_address_with_the_default_ports(shipped) -> None:
    placed = shipped.placed(listen="198.18.0.1")
    assert placed.shared_address == "198.18.0.1"
    assert {(r.address, r.udp_port, r.tcp_port, r.tls_port) for r in placed} == {
        ("198.18.0.1", 5060, 5060, 5061)}
    assert placed.match_host("acme.sip.dublin.twilio.com").region.id == "ie1"
    assert placed.default.id == "us1"
    # Choosing regions keeps the sharing.
    assert shipped.placed(listen="198.18.0.1").select(["ie1", "au1"]).shared_address == "198.18.0.1"


def test_region_address_moves_one_region_anywhere_and_keeps_the_others(shipped) -> None:
    placed = shipped.placed(region_addresses={"ie1": "198.18.0.3", "us1": "10.1.2.3"})
    assert placed["ie1"].address == "198.18.0.3" and placed["us1"].address == "10.1.2.3"
    assert placed["au1"].address == shipped["au1"].address
    assert placed.shared_address is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"listen": "0.0.0.0"}, "not one host's address"),
    ({"listen": "224.0.0.1"}, "not one host's address"),
    ({"listen": "ie1.example"}, "does not appear to be an IPv4 or IPv6 address"),
    ({"region_addresses": {"xx9": "198.18.0.3"}}, "unknown region"),
    ({"region_addresses": {"ie1": "::"}}, "not one host's address"),
    ({"listen": "198.18.0.1", "region_addresses": {"ie1": "198.18.0.3"}}, "cannot move"),
])
def test_unusable_placements_are_refused_with_the_reason(shipped, kwargs, message) -> None:
    with pytest.raises(CatalogueError, match=message):
        shipped.placed(**kwargs)


def test_two_regions_on_one_address_are_refused_unless_shared(shipped) -> None:
    with pytest.raises(CatalogueError, match="two regions share an address"):
        shipped.placed(region_addresses={"ie1": "198.18.0.3", "au1": "198.18.0.3"})


def test_region_address_arguments_are_region_equals_address() -> None:
    assert parse_region_addresses(["ie1=198.18.0.3", " au1 = 10.0.0.8 "]) == {
        "ie1": "198.18.0.3", "au1": "10.0.0.8"}
    for bad in (["ie1"], ["=198.18.0.3"], ["ie1="], ["ie1=1.2.3.4", "ie1=1.2.3.5"]):
        with pytest.raises(CatalogueError, match="--region-address"):
            parse_region_addresses(bad)


def test_a_region_file_may_name_a_lab_address(tmp_path: Path) -> None:
    (tmp_path / "ie1.yaml").write_text(
        "id: ie1\nedge: dublin\nlocation: Dublin\naddress: 198.18.0.3\ndefault: true\n")
    assert Catalogue.load(tmp_path)["ie1"].address == "198.18.0.3"
    (tmp_path / "ie1.yaml").write_text("id: ie1\nedge: dublin\nlocation: Dublin\naddress: 0.0.0.0\n")
    with pytest.raises(CatalogueError, match="ie1.yaml: address"):
        Catalogue.load(tmp_path)


def test_host_matches_are_remembered_per_host_as_received_within_a_bound() -> None:
    from siptwin.regions import catalogue as module

    fresh = Catalogue.load(default_catalogue_dir())
    hosts = ["acme.sip.twilio.com", "ACME.sip.dublin.twilio.com.", "acme.sip.nowhere.twilio.com",
             "example.com", "acme.sip.ie1.twilio.com"]
    expected = [fresh._match_host(h) for h in hosts]
    assert [fresh.match_host(h) for h in hosts] == expected
    assert [fresh.match_host(h) for h in hosts] == expected  # again, from the memo
    assert fresh.match_host("ACME.sip.dublin.twilio.com.").region.id == "ie1"
    assert fresh.match_host("acme.sip.nowhere.twilio.com").region is None
    for n in range(module._HOST_MATCHES_KEPT + 10):  # a flood of distinct hosts
        fresh.match_host(f"x{n}.sip.twilio.com")
    assert len(fresh._host_matches) <= module._HOST_MATCHES_KEPT
    assert fresh.match_host("acme.sip.twilio.com") == expected[0]
