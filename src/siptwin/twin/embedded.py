"""The whole twin in one process: control plane, one SIP node per region, DNS.

:class:`EmbeddedTwin` runs everything in the current process and event loop - the default of
``siptwin up`` and of the suite. It implements :class:`~siptwin.twin.config.Twin`, as the
process, netns and docker backends do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import ssl
import time
from pathlib import Path

from aiohttp import web

from ..cloud.api import make_app
from ..cloud.params import ApiSettings, UnknownParameterPolicy
from ..cloud.server import start_site
from ..cloud.store import Store
from ..cloud.view import ControlPlaneView
from ..model.calls import Call, CallRegistry
from ..model.findings import Finding
from ..model.state_dir import REGISTRATIONS_FILE, TLS_DIR
from ..regions.catalogue import Catalogue, default_catalogue_dir
from ..regions.dns import DnsServer
from ..regions.node import CallHandler, RegionNode
from ..regions.registrar import Registrar, SqliteBindings
from ..settings import Fidelity
from ..sip.digest import make_opaque
from ..transport.endpoint import ConnectionBudget
from ..transport.tls import server_context
from ..voice.interpreter import VoiceHandler
from .certificates import CertificateFollower
from .config import RegionAddress, TwinConfig
from .nodes import NodeWiring, build_nodes, new_digest_state

log = logging.getLogger("siptwin.twin")


class EmbeddedTwin:
    def __init__(self, config: TwinConfig, handler: CallHandler | None = None) -> None:
        self.config = config
        self.catalogue = config.catalogue or Catalogue.load(default_catalogue_dir())
        # The voice layer (webhooks, TwiML, media) unless a test passes StaticAnswer or its own.
        self.handler: CallHandler = handler or VoiceHandler()
        self.calls = CallRegistry()
        self.registrar = Registrar()
        self.digest = new_digest_state(secrets.token_bytes(32), make_opaque(), config.fidelity,
                                       bind_source_port=config.shared_listeners,
                                       worker=0 if config.shared_listeners else None)
        self.nodes: dict[str, RegionNode] = {}
        self._wiring: NodeWiring | None = None
        self.connections: ConnectionBudget | None = None  # every node's SIP connections
        self.store: Store | None = None
        self.control: ControlPlaneView | None = None
        self.dns: DnsServer | None = None
        self._api_runner: web.AppRunner | None = None
        self._api_port = config.api_port
        self.account_sid = ""
        self.auth_token = ""
        self.auth_tokens: dict[str, str] = {}
        self.started_in: float = 0.0
        self._certificates: CertificateFollower | None = None
        self._follow: asyncio.Task[None] | None = None
        self.api_settings = ApiSettings()
        self._apply_control_plane_settings(config.fidelity)

    @property
    def fidelity(self) -> Fidelity:
        return self.config.fidelity

    def set_fidelity(self, fidelity: Fidelity) -> None:
        """Change settings of a running twin (scenarios do, per test)."""
        self.config.fidelity = fidelity
        self.digest.issuer.lifetime = fidelity.nonce_lifetime
        if self._wiring is not None:
            self._wiring.fidelity = fidelity
        self._apply_control_plane_settings(fidelity)
        for node in self.nodes.values():
            node.apply_fidelity(fidelity)

    def _apply_control_plane_settings(self, fidelity: Fidelity) -> None:
        """The REST side of the settings: one file sets the edges and the API alike."""
        self.api_settings.unknown_parameters = UnknownParameterPolicy(fidelity.unknown_parameters)
        self.api_settings.emergency_caller_check = str(fidelity.emergency_caller_check)
        self.api_settings.referenced_delete = str(fidelity.referenced_delete)
        if self.store is not None:
            self.store.route_propagation_seconds = int(fidelity.route_propagation_seconds)

    @property
    def api_url(self) -> str:
        return f"http://{self.config.api_host}:{self._api_port}"

    async def start(self) -> None:
        began = time.perf_counter()
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        if cfg.shared_listeners:  # worker processes reach the same bindings
            self.registrar.store = SqliteBindings(cfg.state_dir / REGISTRATIONS_FILE, fresh=True)
        try:
            self.store = Store.open(
                cfg.state_dir, route_propagation_seconds=int(cfg.fidelity.route_propagation_seconds))
            sid = cfg.account_sid or os.environ.get("TWILIO_ACCOUNT_SID") or None
            token = cfg.auth_token or os.environ.get("TWILIO_AUTH_TOKEN") or None
            master = self.store.ensure_master_account(sid, token if sid else None)
            self.account_sid, self.auth_token = master.sid, master.auth_token
            self.auth_tokens = self.store.auth_tokens(master.sid)
            self.control = ControlPlaneView(self.store)
            self._api_runner, self._api_port = await start_site(
                make_app(self.store, self.api_settings, calls=self.calls, diagnose=_diagnose),
                cfg.api_host, cfg.api_port, limits=cfg.limits,
                beyond_loopback=cfg.beyond_loopback)
            self.connections = ConnectionBudget(cfg.limits)
            tls = self._tls_context() if cfg.tls else None
            following = self._certificates if cfg.certificate_follows_domains else None
            self._wiring = NodeWiring(self.catalogue, self.control, cfg.fidelity, self.digest,
                                      self.calls, self.registrar, self.handler, tls,
                                      reuse_port=cfg.shared_listeners, limits=cfg.limits,
                                      budget=self.connections,
                                      tls_refresh=following.refresh if following else None)
            for node in build_nodes(self._wiring):
                await node.start()
                self.nodes[node.region.id] = node
            self.dns = DnsServer(self.catalogue, self.control, cfg.dns_host, cfg.dns_port)
            await self.dns.start()
            if following is not None:
                self._follow = asyncio.get_running_loop().create_task(following.run())
        except BaseException:
            await self.stop()
            raise
        self.started_in = time.perf_counter() - began

    def _tls_context(self) -> ssl.SSLContext:
        assert self.control is not None
        self._certificates = CertificateFollower(self.config.state_dir / TLS_DIR, self.catalogue,
                                                 self.control,
                                                 in_child=self.config.certificate_in_child)
        context = self._certificates.context = server_context(*self._certificates.ensure())
        return context

    @property
    def certificate(self) -> Path | None:
        return self.config.state_dir / TLS_DIR / "siptwin.crt" if self.config.tls else None

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            self._follow = None
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
        if isinstance(self.registrar.store, SqliteBindings):
            self.registrar.store.close()

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
        """A region stopped by ``stop_region`` comes back, wired as at start."""
        assert self._wiring is not None
        node = self._wiring.node(self.nodes[region_id].region)
        await node.start()
        self.nodes[region_id] = node

    def region_addresses(self) -> list[RegionAddress]:
        out = []
        shared = (self.nodes.get(self.catalogue.default.id)
                  if self.catalogue.shared_address is not None else None)
        for region in self.catalogue:
            node = shared or self.nodes.get(region.id)
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


def _diagnose(call: Call, database: Path) -> list[Finding]:
    # Imported on the first explanation asked for: the rules are no part of serving calls.
    from ..diagnostics import diagnose_call

    return diagnose_call(call, database=database)
