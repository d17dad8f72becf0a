"""The netns backend: each region in its own network namespace on 198.18.0.0/15."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess

import pytest

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.twin.backends.netns import POOL, NetnsTwin, available
from siptwin.twin.config import TwinConfig
from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD


@pytest.fixture
async def netns_twin(tmp_path):
    problem = available()
    if problem:
        pytest.fail(problem)  # CI runs as root: this backend must be tested there
    catalogue = Catalogue.load(default_catalogue_dir()).select(["us1", "ie1"])
    twin = NetnsTwin(TwinConfig(state_dir=tmp_path / "state", api_port=0, catalogue=catalogue))
    await twin.start()
    yield twin
    namespaces = list(twin.namespaces.values())
    await twin.stop()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in namespaces), "namespaces left behind"


async def provision_acme(twin: NetnsTwin, **extra) -> None:
    client = sdk_client(twin.api_url, twin.account_sid, twin.auth_token)
    plan = DomainPlan("acme", voice_url="twiml:<Response><Say>hi</Say></Response>", **extra)
    await asyncio.to_thread(provision, client, plan)


async def test_regions_live_in_their_own_namespaces_on_the_benchmark_block(netns_twin) -> None:
    assert set(netns_twin.namespaces) == {"us1", "ie1"}
    for region_id, netns in netns_twin.namespaces.items():
        address = netns_twin.catalogue[region_id].address
        assert ipaddress.ip_address(address) in POOL
        shown = subprocess.run(["ip", "-n", netns, "-4", "-o", "addr"], capture_output=True,
                               text=True).stdout
        assert address in shown


async def test_an_authenticated_call_crosses_the_namespace_boundary(netns_twin) -> None:
    await provision_acme(netns_twin, credentials=[("alice", PASSWORD)])
    source = netns_twin.caller_address("127.0.0.1")
    host, port = netns_twin.nodes["ie1"].addresses["udp"]
    async with SipClient(source) as client:
        result = await client.invite(host, port, "sip:1@acme.sip.ie1.twilio.com",
                                     auth=Auth("alice", PASSWORD))
    assert result.statuses == [100, 407, 100, 180, 200]
    record = netns_twin.calls.get(result.call_id)
    assert record.region == "ie1" and record.source_ip == source


async def test_acl_entries_follow_the_callers_into_their_network(netns_twin) -> None:
    await provision_acme(netns_twin, acl=[netns_twin.acl_entry("127.0.0.50")])
    host, port = netns_twin.nodes["us1"].addresses["udp"]
    async with SipClient(netns_twin.caller_address("127.0.0.50")) as client:
        listed = await client.invite(host, port, "sip:1@acme.sip.twilio.com")
    async with SipClient(netns_twin.caller_address("127.0.0.51")) as client:
        unlisted = await client.invite(host, port, "sip:1@acme.sip.twilio.com", wait_final=1.0)
    assert listed.statuses == [100, 180, 200]
    assert unlisted.timed_out and unlisted.responses == []
