"""The embedded twin the live tests run against: every region on a loopback /24 of its own
per xdist worker, ephemeral ports, the seed profile; ``Harness`` provisions and calls it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from siptwin.diagnostics import Finding, explain
from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.limits import Limits
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.settings import build_fidelity
from siptwin.twin.config import TwinConfig
from siptwin.twin.embedded import EmbeddedTwin
from siptwin.ua.client import Auth, SipClient

# Most live tests exercise the edge without an application: a domain without voice_url is
# answered and left silent (a twin-only setting; Twilio's default is tested on its own).
NO_APPLICATION = {"no_voice_url": "answer-silent"}


def worker_network() -> str:
    """A /24 of loopback per xdist worker, so parallel twins never share an address."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"127.0.{100 + index}.0/24"


def wait_until_certificate_names(state: Path, host: str, timeout: float = 15) -> bool:
    """Wait until the certificate the twin of ``state`` serves is described as naming
    ``host`` (a domain created while it runs); False when it is not within ``timeout``.

    The description is written after the pair it describes, and every serving process
    loads a renewed pair before its next handshake: from then on, each connection is shown it.
    """
    description, deadline = state / "tls" / "siptwin.json", time.monotonic() + timeout
    while True:
        try:
            if host in json.loads(description.read_text())["hostnames"]:
                return True
        except (OSError, ValueError):  # not yet written
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def ephemeral(region):
    from dataclasses import replace

    return replace(region, udp_port=0, tcp_port=0, tls_port=0)


class Harness:
    def __init__(self, twin: EmbeddedTwin) -> None:
        self.twin = twin

    def client(self, region: str = "us1"):
        return sdk_client(self.twin.api_url, self.twin.account_sid,
                          self.twin.auth_tokens[region], region)

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


def embedded_twin(state_dir, limits: Limits | None = None) -> EmbeddedTwin:
    catalogue = Catalogue.load(default_catalogue_dir()).relocated(worker_network(), port_offset=0)
    catalogue = Catalogue([ephemeral(r) for r in catalogue])
    return EmbeddedTwin(TwinConfig(state_dir=state_dir, api_port=0, dns_port=0,
                                   fidelity=build_fidelity("seed", NO_APPLICATION),
                                   catalogue=catalogue, limits=limits or Limits()))


def by_id(twin, call_id: str) -> dict[str, Finding]:
    """The findings of one call, by id."""
    return {f.id: f for f in explain(twin, call_id)}
