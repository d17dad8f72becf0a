"""What a twin is, whichever backend runs it: :class:`TwinConfig` and the :class:`Twin` type.

The CLI (``siptwin up``), the suite (``harness``) and the helpers that act on a running twin
(caller locations, faults, diagnostics) are typed against :class:`Twin`; the embedded twin and
the process, netns and docker backends implement it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..limits import Limits
from ..model.calls import CallLookup
from ..regions.catalogue import Catalogue, Region
from ..settings import Fidelity, build_fidelity

if TYPE_CHECKING:
    from ..cloud.store import Store
    from ..cloud.view import ControlPlaneView


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
    # Make a new certificate when domains are created or deleted, so that it names their host
    # forms (`siptwin up`: devices may refuse wildcards). The suite's twins, whose domains
    # change per test, keep the one made at start.
    certificate_follows_domains: bool = False
    # Listen with SO_REUSEPORT and bind nonces to the source port: `siptwin up --workers N`
    # starts worker processes that serve the same addresses (siptwin.twin.worker_process).
    shared_listeners: bool = False
    # The user chose to serve the REST API beyond loopback (`siptwin up --api-host`).
    beyond_loopback: bool = False
    # Resource limits (siptwin.limits, docs/security.md): not fidelity, protection.
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class RegionAddress:
    region: Region
    host: str
    udp: int | None
    tcp: int | None
    tls: int | None


class ServesAddresses(Protocol):
    """One region of a running twin: where it listens, per transport (None: not listening)."""

    @property
    def addresses(self) -> dict[str, tuple[str, int] | None]: ...


class Twin(Protocol):
    """What every backend (embedded, process, netns, docker) offers the CLI and the suite."""

    config: TwinConfig
    catalogue: Catalogue
    account_sid: str
    auth_token: str  # the home region's (us1)

    @property
    def auth_tokens(self) -> Mapping[str, str]: ...  # every processing region's, us1 first

    @property
    def calls(self) -> CallLookup: ...
    @property
    def nodes(self) -> Mapping[str, ServesAddresses]: ...
    # The control plane's store when it runs in this process (the embedded twin), else None.
    @property
    def store(self) -> Store | None: ...
    @property
    def control(self) -> ControlPlaneView | None: ...
    @property
    def api_url(self) -> str: ...
    @property
    def fidelity(self) -> Fidelity: ...
    def set_fidelity(self, fidelity: Fidelity) -> None: ...
    @property
    def dns_address(self) -> tuple[str, int] | None: ...
    @property
    def certificate(self) -> Path | None: ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def region_addresses(self) -> list[RegionAddress]: ...

    # Faults scenarios inject (harness/faults.py); each is undone by the suite.
    def impair_region(self, region_id: str, latency_ms: float = 0.0,
                      loss_percent: float = 0.0) -> None: ...
    def blackhole_region(self, region_id: str) -> None: ...
    async def stop_region(self, region_id: str) -> None: ...
    async def start_region(self, region_id: str) -> None: ...
