"""``siptwin up --listen ADDR``: every region served on one address, the Request-URI host
naming the region (a convenience: Twilio selects the edge by the address reached)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from dnslib import DNSRecord

from siptwin.harness.provision import DomainPlan
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.settings import build_fidelity
from siptwin.twin.config import TwinConfig
from siptwin.twin.embedded import EmbeddedTwin
from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD
from tests.support.twin import NO_APPLICATION, Harness, worker_network

pytestmark = pytest.mark.asyncio


def shared_address() -> str:
    return worker_network().replace(".0/24", ".200")


@pytest.fixture
async def shared(tmp_path):
    placed = Catalogue.load(default_catalogue_dir()).placed(listen=shared_address())
    ephemeral = Catalogue([replace(r, udp_port=0, tcp_port=0, tls_port=0) for r in placed],
                          shared_address=placed.shared_address)
    twin = EmbeddedTwin(TwinConfig(state_dir=tmp_path / "state", api_port=0, dns_port=0,
                                   fidelity=build_fidelity("seed", NO_APPLICATION),
                                   catalogue=ephemeral))
    await twin.start()
    yield Harness(twin)
    await twin.stop()


async def call(harness: Harness, uri: str, **kwargs):
    host, port = harness.node_port("us1")  # the one node: every region's address
    async with SipClient("127.0.0.1", "udp") as client:
        return await client.invite(host, port, uri, **kwargs)


async def test_one_node_serves_every_region_on_one_address(shared) -> None:
    assert list(shared.twin.nodes) == ["us1"]
    entries = shared.twin.region_addresses()
    assert len(entries) == 8
    assert {(e.host, e.udp, e.tls) for e in entries} == {
        (shared_address(), *[shared.twin.nodes["us1"].addresses[t][1] for t in ("udp", "tls")])}


@pytest.mark.parametrize(("host", "region"), [
    ("acme.sip.twilio.com", "us1"),
    ("acme.sip.ie1.twilio.com", "ie1"),
    ("acme.sip.sydney.twilio.com", "au1"),
    ("acme.sip.london-ix.twilio.com", "ie1"),
])
async def test_the_request_uri_host_names_the_region(shared, host, region) -> None:
    await shared.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    result = await call(shared, f"sip:1000@{host}", auth=Auth("alice", PASSWORD))
    assert result.statuses == [100, 407, 100, 180, 200] and result.bye_status == 200
    record = shared.twin.calls.get(result.call_id)
    assert record.region == region and record.status == "completed"
    assert record.username == "alice"


async def test_unknown_edge_labels_and_domains_keep_todays_answers(shared) -> None:
    await shared.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    unknown_edge = await call(shared, "sip:1000@acme.sip.atlantis.twilio.com")
    assert unknown_edge.statuses == [404]
    assert unknown_edge.header("X-Twilio-Error") is None  # as for any unknown domain
    assert shared.twin.calls.get(unknown_edge.call_id).region == "us1"
    unknown_domain = await call(shared, "sip:1000@other.sip.de1.twilio.com")
    assert unknown_domain.statuses == [404]
    assert shared.twin.calls.get(unknown_domain.call_id).region == "de1"


async def test_register_is_recorded_in_the_region_its_host_names(shared) -> None:
    await shared.provision(DomainPlan("acme", sip_registration=True,
                                      registration_credentials=[("alice", PASSWORD)]))
    host, port = shared.node_port("us1")
    async with SipClient() as client:
        got = await client.request("REGISTER", host, port, "sip:acme.sip.jp1.twilio.com",
                                   to_uri="sip:alice@acme.sip.jp1.twilio.com",
                                   headers=[("Contact", "<sip:alice@127.0.0.1:5070>"),
                                            ("Expires", "600")],
                                   auth=Auth("alice", PASSWORD))
    assert [r.status for r in got] == [407, 200]
    assert shared.twin.calls.get(got[-1].call_id).region == "jp1"


async def test_dns_sends_every_host_form_to_the_shared_address(shared) -> None:
    await shared.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    dns_host, dns_port = shared.twin.dns_address
    for name in ("acme.sip.twilio.com", "acme.sip.br1.twilio.com", "acme.sip.tokyo-ix.twilio.com"):
        raw = await asyncio.to_thread(DNSRecord.question(name, "A").send, dns_host, dns_port,
                                      timeout=2)
        assert [str(rr.rdata) for rr in DNSRecord.parse(raw).rr] == [shared_address()]
