"""The one wiring of region nodes, used by every process that serves SIP.

The embedded twin, a region process (``twin.region_process``) and a worker process
(``twin.worker_process``) all build their nodes here, so they cannot drift apart: the same
call handler, registrar, digest state and listener options for every node of one process.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..cloud.view import ControlPlaneView
from ..limits import Limits
from ..model.calls import CallRegistry
from ..regions.catalogue import Catalogue, Region
from ..regions.node import CallHandler, RegionNode
from ..regions.pipeline import DigestState
from ..regions.registrar import Registrar
from ..settings import Fidelity
from ..sip.digest import NonceIssuer
from ..transport.endpoint import ConnectionBudget


def new_digest_state(secret: bytes, opaque: str, fidelity: Fidelity,
                     bind_source_port: bool = False, worker: int | None = None) -> DigestState:
    """Nonces of one twin: every process that shares ``secret`` and ``opaque`` can read them;
    with ``worker`` set (``--workers N``), each process accepts only the nonces it issued, so a
    replayed Authorization cannot slip past another process's nonce-count record."""
    return DigestState(NonceIssuer(secret, lifetime=fidelity.nonce_lifetime), opaque=opaque,
                       bind_source_port=bind_source_port, worker=worker)


@dataclass
class NodeWiring:
    """What the region nodes of one process share."""

    catalogue: Catalogue
    control: ControlPlaneView
    fidelity: Fidelity
    digest: DigestState
    calls: CallRegistry
    registrar: Registrar
    handler: CallHandler
    tls: ssl.SSLContext | None
    # SO_REUSEPORT: other processes (`siptwin up --workers N`) serve the same addresses.
    reuse_port: bool = False
    # Resource limits (siptwin.limits) and the one connection budget of this process.
    limits: Limits | None = None
    budget: ConnectionBudget | None = None
    # Loads a renewed certificate into ``tls`` before a handshake (CertificateFollower.refresh).
    tls_refresh: Callable[[], None] | None = None

    def node(self, region: Region) -> RegionNode:
        return RegionNode(region, self.catalogue, self.control, self.fidelity, self.digest,
                          self.calls, self.registrar, self.handler, self.tls,
                          reuse_port=self.reuse_port, limits=self.limits, budget=self.budget,
                          tls_refresh=self.tls_refresh)


def build_nodes(wiring: NodeWiring, regions: Iterable[Region] | None = None) -> list[RegionNode]:
    """One node per region (default: every region of the catalogue), not yet started.

    When every region shares one address (``siptwin up --listen``) one node, the default
    region's, serves them all and routes each request by its Request-URI host.
    """
    if wiring.catalogue.shared_address is not None:
        return [wiring.node(wiring.catalogue.default)]
    return [wiring.node(region) for region in (wiring.catalogue if regions is None else regions)]
