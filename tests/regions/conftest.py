from __future__ import annotations

import asyncio
import os

import pytest

from siptwin.harness.client import Auth, SipClient
from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.harness.twin import EmbeddedTwin, TwinConfig
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.settings import build_fidelity

PASSWORD = "Harbour7Lights"
NO_APPLICATION = {"no_voice_url": "answer-silent"}


def worker_network() -> str:
    """A /24 of loopback per xdist worker, so parallel twins never share an address."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"127.0.{100 + index}.0/24"


@pytest.fixture
async def twin(tmp_path):
    catalogue = Catalogue.load(default_catalogue_dir()).relocated(worker_network(), port_offset=0)
    catalogue = Catalogue([_ephemeral(r) for r in catalogue])
    # Most tests exercise the edge without an application: a domain without voice_url is
    # answered and left silent (a twin-only setting; Twilio's default is tested on its own).
    config = TwinConfig(state_dir=tmp_path / "state", api_port=0, dns_port=0,
                        fidelity=build_fidelity("seed", NO_APPLICATION), catalogue=catalogue)
    instance = EmbeddedTwin(config)
    await instance.start()
    yield instance
    await instance.stop()


def _ephemeral(region):
    from dataclasses import replace

    return replace(region, udp_port=0, tcp_port=0, tls_port=0)


class Harness:
    def __init__(self, twin: EmbeddedTwin) -> None:
        self.twin = twin

    def client(self, region: str = "us1"):
        return sdk_client(self.twin.api_url, self.twin.account_sid, self.twin.auth_token, region)

    async def provision(self, plan: DomainPlan):
        return await asyncio.to_thread(provision, self.client(plan.region), plan)

    def node_port(self, region: str, transport: str = "udp") -> tuple[str, int]:
        address = self.twin.nodes[region].addresses[transport]
        assert address is not None
        return address[0], address[1]

    async def call(self, region: str, uri: str, *, source: str = "127.0.0.1", transport: str = "udp",
                   auth: Auth | None = None, **kwargs):
        host, port = self.node_port(region, transport)
        async with SipClient(source, transport) as client:
            return await client.invite(host, port, uri, auth=auth, **kwargs)


@pytest.fixture
def harness(twin) -> Harness:
    return Harness(twin)
