"""The region catalogue: one YAML file per Twilio edge under ``regions/``.

Adding a region is adding a file. Each region has its own address (the shipped files use
loopback ones; ``siptwin up --region-address`` and ``--listen`` place regions elsewhere, see
:meth:`Catalogue.placed`); the catalogue also answers "which domain and which edge does this
host name mean?" for the SIP nodes and DNS.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

SIP_SUFFIX = ".sip.twilio.com"
_LOCALIZED = re.compile(r"(?P<label>.+)\.sip\.(?P<edge>[a-z0-9-]+)\.twilio\.com\Z")
_REQUIRED = ("id", "edge", "location", "address")


class CatalogueError(ValueError):
    pass


@dataclass(frozen=True)
class Region:
    id: str  # legacy id: us1, ie1, ...
    edge: str  # edge location: ashburn, dublin, ...
    location: str
    address: str  # the address the node binds to and DNS answers with
    interconnect: tuple[str, ...] = ()
    udp_port: int = 5060
    tcp_port: int = 5060
    tls_port: int = 5061
    latency_ms: float = 0.0
    loss_percent: float = 0.0
    default: bool = False  # the non-localized {d}.sip.twilio.com resolves here

    @property
    def labels(self) -> tuple[str, ...]:
        """Every host-name label that selects this edge."""
        return (self.id, self.edge, *self.interconnect)

    def host_forms(self, label: str) -> list[str]:
        """Every host name of domain ``label`` answered by this region."""
        forms = [f"{label}.sip.{name}.twilio.com" for name in self.labels]
        if self.default:
            forms.insert(0, f"{label}{SIP_SUFFIX}")
        return forms


_HOST_MATCHES_KEPT = 1024


@dataclass(frozen=True)
class HostMatch:
    """What a Request-URI host names: the canonical domain and the edge label used."""

    domain_name: str  # "acme.sip.twilio.com"
    edge_label: str | None  # "ie1", "dublin", "london-ix", or None for the non-localized form
    region: Region | None  # the region that edge label selects (None: unknown edge label)

    @property
    def label(self) -> str:
        return self.domain_name[: -len(SIP_SUFFIX)]


class Catalogue:
    def __init__(self, regions: list[Region], shared_address: str | None = None) -> None:
        if not regions:
            raise CatalogueError("the region catalogue is empty")
        self.regions: dict[str, Region] = {}
        self._by_label: dict[str, Region] = {}
        for region in regions:
            if region.id in self.regions:
                raise CatalogueError(f"region {region.id} is defined twice")
            self.regions[region.id] = region
            for label in region.labels:
                if label in self._by_label:
                    raise CatalogueError(f"edge label {label} is used by two regions")
                self._by_label[label] = region
        defaults = [r for r in regions if r.default]
        if len(defaults) > 1:
            raise CatalogueError("more than one region is marked default")
        self.default = defaults[0] if defaults else regions[0]
        # match_host by host as received: a PBX's calls repeat their Request-URI host, and
        # the regions never change once made. Bounded: hosts come off the wire.
        self._host_matches: dict[str, HostMatch | None] = {}
        # Twilio selects the edge by the address a packet reaches (spec §6.1), so regions
        # have an address each - unless every region is served on one address
        # (`siptwin up --listen`), where the Request-URI host selects the region instead.
        self.shared_address = shared_address
        addresses = [r.address for r in regions]
        if shared_address is not None:
            if set(addresses) != {shared_address}:
                raise CatalogueError(f"every region must be on {shared_address} when shared")
        elif len(set(addresses)) != len(addresses):
            raise CatalogueError("two regions share an address")

    @classmethod
    def load(cls, directory: Path) -> Catalogue:
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise CatalogueError(f"no region files in {directory}")
        regions = [_region_from_file(path) for path in files]
        # Addresses follow the order (us1, us2, ie1, ...); list regions that way.
        regions.sort(key=lambda r: ipaddress.ip_address(r.address))
        return cls(regions)

    def __iter__(self):
        return iter(self.regions.values())

    def __len__(self) -> int:
        return len(self.regions)

    def __getitem__(self, region_id: str) -> Region:
        return self.regions[region_id]

    def select_listed(self, text: str | None) -> Catalogue:
        """``select`` from a comma-separated list as typed on a command line ("us1, ie1")."""
        return self.select([i.strip() for i in (text or "").split(",") if i.strip()])

    def select(self, ids: list[str] | None) -> Catalogue:
        if not ids:
            return self
        unknown = [i for i in ids if i not in self.regions]
        if unknown:
            raise CatalogueError(f"unknown region(s) {', '.join(unknown)}; known: {', '.join(self.regions)}")
        chosen = [self.regions[i] for i in ids]
        if not any(r.default for r in chosen):
            chosen[0] = replace(chosen[0], default=True)
        return Catalogue(chosen, shared_address=self.shared_address)

    def relocated(self, network: str | None = None, port_offset: int = 0) -> Catalogue:
        """The same regions on other loopback addresses and/or ports.

        Parallel test workers each get their own /24 (``127.0.N.0/24``) so nothing collides.
        """
        out = []
        hosts = ipaddress.ip_network(network).hosts() if network else None
        for region in self.regions.values():
            address = str(next(hosts)) if hosts else region.address
            out.append(replace(
                region, address=address,
                udp_port=_offset(region.udp_port, port_offset),
                tcp_port=_offset(region.tcp_port, port_offset),
                tls_port=_offset(region.tls_port, port_offset),
            ))
        return Catalogue(out)

    def placed(self, listen: str | None = None,
               region_addresses: Mapping[str, str] | None = None) -> Catalogue:
        """The regions on the addresses a user chose (``siptwin up --listen`` and
        ``--region-address REGION=ADDR``), loopback or not.

        ``listen`` puts every region on one address with the default region's ports: one node
        serves them all and routes each request by its Request-URI host.
        ``region_addresses`` moves single regions (not together with ``listen``).
        """
        moves = dict(region_addresses or {})
        if listen is not None and moves:
            raise CatalogueError("--listen serves every region on one address; "
                                 "--region-address cannot move one of them")
        unknown = [i for i in moves if i not in self.regions]
        if unknown:
            raise CatalogueError(f"unknown region(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(self.regions)}")
        if listen is not None:
            address = check_bind_address(listen, "--listen")
            ports = self.default
            return Catalogue([replace(r, address=address, udp_port=ports.udp_port,
                                      tcp_port=ports.tcp_port, tls_port=ports.tls_port)
                              for r in self.regions.values()], shared_address=address)
        if not moves:
            return self
        return Catalogue([
            replace(r, address=check_bind_address(moves[r.id], f"--region-address {r.id}"))
            if r.id in moves else r
            for r in self.regions.values()
        ])

    def match_host(self, host: str) -> HostMatch | None:
        """Interpret a Request-URI host; None when it is no SIP-domain host name at all."""
        memo = self._host_matches
        if host in memo:
            return memo[host]
        if len(memo) >= _HOST_MATCHES_KEPT:
            memo.clear()
        match = memo[host] = self._match_host(host)
        return match

    def _match_host(self, host: str) -> HostMatch | None:
        host = host.lower().rstrip(".")
        if host.endswith(SIP_SUFFIX) and len(host) > len(SIP_SUFFIX):
            return HostMatch(host, None, self.default)
        m = _LOCALIZED.match(host)
        if m is None:
            return None
        label, edge = m.group("label"), m.group("edge")
        return HostMatch(f"{label}{SIP_SUFFIX}", edge, self._by_label.get(edge))

    def by_address(self, address: str) -> Region | None:
        return next((r for r in self.regions.values() if r.address == address), None)


def check_bind_address(text: str, what: str) -> str:
    """An address a node can bind to and name in Contact and SDP: one host, not a wildcard."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError as err:
        raise CatalogueError(f"{what}: {err}") from None
    if address.is_unspecified or address.is_multicast:
        raise CatalogueError(f"{what}: {address} is not one host's address; name the address "
                             "devices reach (it goes into Contact headers, SDP and DNS answers)")
    return str(address)


def parse_region_addresses(items: list[str] | None) -> dict[str, str]:
    """``["ie1=192.0.2.3", ...]`` as typed after ``--region-address`` -> ``{"ie1": "192.0.2.3"}``."""
    out: dict[str, str] = {}
    for item in items or ():
        region, sep, address = item.partition("=")
        if not sep or not region.strip() or not address.strip():
            raise CatalogueError(f"--region-address {item!r}: expected REGION=ADDRESS, "
                                 "e.g. ie1=192.0.2.3")
        if region.strip() in out:
            raise CatalogueError(f"--region-address: {region.strip()} is given twice")
        out[region.strip()] = address.strip()
    return out


def is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return text == "localhost"


def _offset(port: int, offset: int) -> int:
    return 0 if port == 0 else port + offset


def _region_from_file(path: Path) -> Region:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CatalogueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: expected a mapping")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CatalogueError(f"{path}: missing {', '.join(missing)}")
    if data["id"] != path.stem:
        raise CatalogueError(f"{path}: id {data['id']!r} does not match the file name")
    address = check_bind_address(str(data["address"]), f"{path}: address")
    ports = data.get("ports") or {}
    impairment = data.get("impairment") or {}
    return Region(
        id=str(data["id"]),
        edge=str(data["edge"]),
        location=str(data["location"]),
        address=address,
        interconnect=tuple(str(x) for x in data.get("interconnect") or ()),
        udp_port=int(ports.get("udp", 5060)),
        tcp_port=int(ports.get("tcp", 5060)),
        tls_port=int(ports.get("tls", 5061)),
        latency_ms=float(impairment.get("latency_ms", 0)),
        loss_percent=float(impairment.get("loss_percent", 0)),
        default=bool(data.get("default", False)),
    )


def default_catalogue_dir() -> Path:
    """``regions/`` of a source checkout, or the copy shipped inside the package."""
    checkout = Path(__file__).resolve().parents[3] / "regions"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "data"
