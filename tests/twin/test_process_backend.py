"""The process backend: control plane and each region in its own OS process."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.twin.backends.process import ProcessTwin
from siptwin.twin.config import TwinConfig
from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD
from tests.support.twin import worker_network


@pytest.fixture
async def process_twin(tmp_path):
    network = worker_network().replace(".0/24", ".128/25")  # beside the embedded twins' hosts
    catalogue = Catalogue.load(default_catalogue_dir()).select(["us1", "ie1", "de1"])
    catalogue = catalogue.relocated(network)
    catalogue = Catalogue([replace(r, udp_port=0, tcp_port=0, tls_port=0) for r in catalogue])
    twin = ProcessTwin(TwinConfig(state_dir=tmp_path / "state", api_port=0, catalogue=catalogue))
    await twin.start()
    yield twin
    await twin.stop()


async def provision_acme(twin: ProcessTwin, **extra) -> None:
    client = sdk_client(twin.api_url, twin.account_sid, twin.auth_token)
    plan = DomainPlan("acme", credentials=[("alice", PASSWORD)],
                      voice_url="twiml:<Response><Say>hi</Say></Response>", **extra)
    await asyncio.to_thread(provision, client, plan)


async def call(twin: ProcessTwin, region: str, wait: float = 5.0):
    host, port = twin.nodes[region].addresses["udp"]
    async with SipClient("127.0.0.1") as client:
        return await client.invite(host, port, f"sip:1000@acme.sip.{region}.twilio.com",
                                   auth=Auth("alice", PASSWORD), wait_final=wait)


async def test_each_region_is_its_own_process(process_twin) -> None:
    pids = {p.process.pid for p in process_twin.regions.values()}
    assert len(pids) == 3 and os.getpid() not in pids


async def test_the_process_twin_knows_every_regions_token(process_twin) -> None:
    tokens = process_twin.auth_tokens
    assert list(tokens) == ["us1", "ie1", "au1"] and tokens["us1"] == process_twin.auth_token
    dublin = sdk_client(process_twin.api_url, process_twin.account_sid, tokens["ie1"], "ie1")
    created = await asyncio.to_thread(dublin.sip.credential_lists.create, friendly_name="eu")
    assert created.sid.startswith("CL")


async def test_an_authenticated_call_is_answered_by_a_region_process(process_twin) -> None:
    await provision_acme(process_twin)
    result = await call(process_twin, "ie1")
    assert result.statuses == [100, 407, 100, 180, 200]
    record = process_twin.calls.get(result.call_id)
    assert record is not None and record.region == "ie1" and record.username == "alice"
    assert any(t.first_line.startswith("SIP/2.0 407") for t in record.trace)


async def test_a_stopped_region_is_silent_while_the_others_answer(process_twin) -> None:
    await provision_acme(process_twin)
    await process_twin.stop_region("ie1")
    silent = await call(process_twin, "ie1", wait=1.0)
    assert silent.timed_out and silent.responses == []
    failover = await call(process_twin, "de1")
    assert failover.statuses[-1] == 200
    await process_twin.start_region("ie1")
    back = await call(process_twin, "ie1")
    assert back.statuses[-1] == 200


async def test_api_changes_reach_the_region_processes_at_once(process_twin) -> None:
    await provision_acme(process_twin)
    client = sdk_client(process_twin.api_url, process_twin.account_sid, process_twin.auth_token)
    sip = client.api.v2010.account.sip
    domain = (await asyncio.to_thread(sip.domains.list))[0]
    await asyncio.to_thread(
        lambda: sip.domains(domain.sid).update(
            voice_url='twiml:<Response><Reject reason="busy"/></Response>'))
    result = await call(process_twin, "us1")
    assert result.statuses[-1] == 486


async def test_fidelity_changes_reach_the_region_processes(process_twin) -> None:
    await provision_acme(process_twin, acl=["127.0.0.50"])
    process_twin.set_fidelity(process_twin.fidelity.with_overrides({"profile": "observed"}))
    host, port = process_twin.nodes["de1"].addresses["udp"]
    async with SipClient("127.0.0.51") as client:
        result = await client.invite(host, port, "sip:1@acme.sip.de1.twilio.com", wait_final=3)
    assert result.statuses == [100, 403]
