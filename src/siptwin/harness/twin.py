"""The whole twin on one machine: control plane, one SIP node per region, DNS.

:class:`Twin` is the launcher interface every backend implements (start, stop, the addresses
of each region, and the faults scenarios can inject). :class:`EmbeddedTwin` runs everything in
the current process and event loop - the default, and what the pytest plugin uses.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiohttp import web

from ..cloud.api import make_app
from ..cloud.server import start_site
from ..cloud.store import Store
from ..cloud.view import ControlPlaneView
from ..regions.calls import CallRegistry
from ..regions.catalogue import Catalogue, Region, default_catalogue_dir
from ..regions.dns import DnsServer
from ..regions.node import CallHandler, RegionNode
from ..regions.pipeline import DigestState
from ..regions.registrar import Registrar
from ..limits import Limits
from ..settings import Fidelity, build_fidelity
from ..transport.endpoint import ConnectionBudget
from ..sip.digest import NonceIssuer, make_opaque
from ..transport.tls import ensure_certificate, server_context
from ..voice.interpreter import VoiceHandler

log = logging.getLogger("siptwin.twin")


@dataclass
class TwinConfig:
    state_dir: Path = Path(".siptwin")
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    dns_host: str = "127.0.0.1"
    dns_port: int = 5300
    fidelity: Fidelity = field(default_factory=build_fidelity)
    catalogue: Catalogue | None = None  # default: the regions/ directory
    account_sid: str | None = None  # default: TWILIO_ACCOUNT_SID or generated once
    auth_token: str | None = None
    tls: bool = True
    # Make a missing TLS certificate in a child process (a long-running `siptwin up` stays
    # lean); tests that start many twins make it in-process, which is quicker.
    certificate_in_child: bool = False
    # Listen with SO_REUSEPORT and bind nonces to the source port: `siptwin up --workers N`
    # starts worker processes that serve the same addresses (siptwin.regions.worker).
    shared_listeners: bool = False
    # Resource limits (siptwin.limits, docs/security.md): not fidelity, protection.
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class RegionAddress:
    region: Region
    host: str
    udp: int | None
    tcp: int | None
    tls: int | None


class Twin(Protocol):
    """What every backend (embedded, process, netns, docker) offers the CLI and the harness."""

    config: TwinConfig

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def region_addresses(self) -> list[RegionAddress]: ...
    @property
    def api_url(self) -> str: ...

    # Faults scenarios inject (harness/faults.py); each is undone by the harness.
    def impair_region(self, region_id: str, latency_ms: float = 0.0,
                      loss_percent: float = 0.0) -> None: ...
    def blackhole_region(self, region_id: str) -> None: ...
    async def stop_region(self, region_id: str) -> None: ...
    async def start_region(self, region_id: str) -> None: ...


class EmbeddedTwin:
    def __init__(self, config: TwinConfig, handler: CallHandler | None = None) -> None:
        self.config = config
        self.catalogue = config.catalogue or Catalogue.load(default_catalogue_dir())
        # The voice layer (webhooks, TwiML, media) unless a test passes StaticAnswer or its own.
        self.handler: CallHandler = handler or VoiceHandler()
        self.calls = CallRegistry()
        self.registrar = Registrar()
        self.digest = DigestState(
            NonceIssuer(secrets.token_bytes(32), lifetime=config.fidelity.nonce_lifetime),
            opaque=make_opaque(), bind_source_port=config.shared_listeners,
            worker=0 if config.shared_listeners else None,
        )
        self.nodes: dict[str, RegionNode] = {}
        self.connections: ConnectionBudget | None = None  # every node's SIP connections
        self.store: Store | None = None
        self.control: ControlPlaneView | None = None
        self.dns: DnsServer | None = None
        self._api_runner: web.AppRunner | None = None
        self._api_port = config.api_port
        self.account_sid = ""
        self.auth_token = ""
        self.started_in: float = 0.0

    @property
    def fidelity(self) -> Fidelity:
        return self.config.fidelity

    def set_fidelity(self, fidelity: Fidelity) -> None:
        """Change settings of a running twin (scenarios do, per test)."""
        self.config.fidelity = fidelity
        self.digest.issuer.lifetime = fidelity.nonce_lifetime
        for node in self.nodes.values():
            node.apply_fidelity(fidelity)

    @property
    def api_url(self) -> str:
        return f"http://{self.config.api_host}:{self._api_port}"

    async def start(self) -> None:
        began = time.perf_counter()
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.store = Store.open(cfg.state_dir)
            sid = cfg.account_sid or os.environ.get("TWILIO_ACCOUNT_SID") or None
            token = cfg.auth_token or os.environ.get("TWILIO_AUTH_TOKEN") or None
            master = self.store.ensure_master_account(sid, token if sid else None)
            self.account_sid, self.auth_token = master.sid, master.auth_token
            self.control = ControlPlaneView(self.store)
            self._api_runner, self._api_port = await start_site(
                make_app(self.store, calls=self.calls), cfg.api_host, cfg.api_port,
                limits=cfg.limits)
            self.connections = ConnectionBudget(cfg.limits)
            tls_context = self._tls_context() if cfg.tls else None
            for region in self.catalogue:
                node = RegionNode(region, self.catalogue, self.control, cfg.fidelity, self.digest,
                                  self.calls, self.registrar, self.handler, tls_context,
                                  reuse_port=cfg.shared_listeners, limits=cfg.limits,
                                  budget=self.connections)
                await node.start()
                self.nodes[region.id] = node
            self.dns = DnsServer(self.catalogue, self.control, cfg.dns_host, cfg.dns_port)
            await self.dns.start()
        except BaseException:
            await self.stop()
            raise
        self.started_in = time.perf_counter() - began

    def _tls_context(self):
        names = ["*.sip.twilio.com"]
        for region in self.catalogue:
            names += [f"*.sip.{label}.twilio.com" for label in region.labels]
        cert, key = ensure_certificate(self.config.state_dir / "tls", "siptwin", names,
                                       [r.address for r in self.catalogue],
                                       separate_process=self.config.certificate_in_child)
        return server_context(cert, key)

    @property
    def certificate(self) -> Path:
        return self.config.state_dir / "tls" / "siptwin.crt"

    async def stop(self) -> None:
        if self.dns is not None:
            await self.dns.close()
            self.dns = None
        for node in self.nodes.values():
            await node.close()
        self.nodes.clear()
        close_handler = getattr(self.handler, "close", None)
        if close_handler is not None:
            await close_handler()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
            self._api_runner = None
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.store is not None:
            self.store.close()
            self.store = None

    # ------------------------------------------------------------------ faults
    def impair_region(self, region_id: str, latency_ms: float = 0.0, loss_percent: float = 0.0) -> None:
        """Add one-way latency and loss to a region's UDP traffic (0, 0 restores it)."""
        impairment = self.nodes[region_id].endpoint.config.impairment
        impairment.latency_ms, impairment.loss_percent = latency_ms, loss_percent

    def blackhole_region(self, region_id: str) -> None:
        """Everything to and from the region vanishes, as behind a dead route."""
        self.impair_region(region_id, loss_percent=100.0)

    async def stop_region(self, region_id: str) -> None:
        """The region's node goes away: its sockets close, calls to it get nothing back."""
        await self.nodes[region_id].close()

    async def start_region(self, region_id: str) -> None:
        old = self.nodes[region_id]
        assert self.control is not None
        node = RegionNode(old.region, self.catalogue, self.control, self.fidelity, self.digest,
                          self.calls, self.registrar, self.handler,
                          self._tls_context() if self.config.tls else None,
                          limits=self.config.limits, budget=self.connections)
        await node.start()
        self.nodes[region_id] = node

    def region_addresses(self) -> list[RegionAddress]:
        out = []
        for region in self.catalogue:
            node = self.nodes.get(region.id)
            if node is None:
                continue
            addr = node.addresses
            out.append(RegionAddress(
                region, region.address,
                addr["udp"][1] if addr["udp"] else None,
                addr["tcp"][1] if addr["tcp"] else None,
                addr["tls"][1] if addr["tls"] else None,
            ))
        return out

    @property
    def dns_address(self) -> tuple[str, int] | None:
        return self.dns.address if self.dns is not None else None
