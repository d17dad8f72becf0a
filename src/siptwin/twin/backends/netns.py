"""The netns backend: every region in its own Linux network namespace (root only).

A real network path per region instead of loopback aliases: each region process runs inside
its own namespace behind a veth pair, all joined by a bridge in the root namespace. Addresses
come from 198.18.0.0/15 (RFC 2544 benchmarking space) and nothing else: two /24s per twin,
one for the regions and one for callers. Callers are the root namespace itself: a scenario's
loopback source ``127.0.0.X`` becomes ``198.18.<callers>.X`` (added to the bridge on demand),
and IP ACL entries are mapped the same way, so scenarios written for loopback run unchanged.

Latency and loss are applied inside each region's process (this kernel has no netem), through
the same side channel as the process backend. Everything is torn down at stop; leftovers of a
killed run are removed at the next start (their owner process is gone).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import cast

from ...regions.catalogue import Catalogue, default_catalogue_dir
from ..config import TwinConfig
from .process import ProcessTwin

STATE = Path("/run/siptwin-netns")
POOL = ipaddress.ip_network("198.18.0.0/15")
LOOPBACK_SOURCES = ipaddress.ip_network("127.0.0.0/24")


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(("-n", netns) if netns else ()), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


def available() -> str | None:
    """Why this backend cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the netns backend needs root (ip netns, veth, bridge)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "iproute2 cannot manage network namespaces here"
    return None


def place_regions(config: TwinConfig) -> tuple[TwinConfig, ipaddress.IPv4Network,
                                               ipaddress.IPv4Network, str]:
    """Two free /24s of 198.18.0.0/15: the regions (gateway first) and their callers."""
    regions_net, callers_net = _free_networks()
    hosts = regions_net.hosts()
    gateway = str(next(hosts))
    base = config.catalogue or Catalogue.load(default_catalogue_dir())
    placed = [replace(r, address=str(next(hosts))) for r in base]
    return replace(config, catalogue=Catalogue(placed)), regions_net, callers_net, gateway


class CallerNetwork:
    """Where loopback-written scenarios put their callers when the regions are elsewhere.

    ``127.0.0.X`` becomes ``<callers_net>.X``, added as a /32 on ``caller_interface`` (the
    bridge the regions sit behind) the first time it is used; ACL entries move the same way.
    """

    callers_net: ipaddress.IPv4Network
    caller_interface: str
    _sources: set[str]

    def caller_address(self, source: str) -> str:
        address = ipaddress.ip_address(source)
        if address not in LOOPBACK_SOURCES:
            return source
        offset = int(address) - int(LOOPBACK_SOURCES.network_address)
        mapped = str(self.callers_net.network_address + offset)
        if mapped not in self._sources:
            _ip("addr", "add", f"{mapped}/32", "dev", self.caller_interface, check=False)
            self._sources.add(mapped)
        return mapped

    def acl_entry(self, entry: str) -> str:
        """An ACL entry written for loopback callers, moved to where callers are here."""
        network = ipaddress.ip_network(entry, strict=False)
        if not network.subnet_of(LOOPBACK_SOURCES):  # type: ignore[arg-type]
            return entry
        offset = int(network.network_address) - int(LOOPBACK_SOURCES.network_address)
        moved = ipaddress.ip_network(f"{self.callers_net.network_address + offset}/{network.prefixlen}")
        return str(moved) if network.prefixlen < 32 else str(moved.network_address)


class NetnsTwin(CallerNetwork, ProcessTwin):
    def __init__(self, config: TwinConfig) -> None:
        problem = available()
        if problem:
            raise NetnsError(problem)
        self.tag = secrets.token_hex(2)  # names: st<tag>..., at most 15 characters
        self.bridge = f"st{self.tag}br"
        placed, self.regions_net, self.callers_net, self.gateway = place_regions(config)
        super().__init__(placed)
        self.namespaces: dict[str, str] = {}
        self.caller_interface = self.bridge
        self._sources: set[str] = set()

    # ------------------------------------------------------------------ network
    async def start(self) -> None:
        _clean_leftovers()
        STATE.mkdir(parents=True, exist_ok=True)
        (STATE / self.tag).write_text(json.dumps({"pid": os.getpid(), "bridge": self.bridge}))
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/{self.regions_net.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for region in self.catalogue:
                self._place(region.id, region.address)
        except BaseException:
            self._teardown()
            raise
        await super().start()

    def _place(self, region_id: str, address: str) -> None:
        netns = f"st{self.tag}{region_id}"
        outer, inner = f"st{self.tag}{region_id}o", f"st{self.tag}{region_id}i"
        _ip("netns", "add", netns)
        self.namespaces[region_id] = netns
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", netns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("addr", "add", f"{address}/{self.regions_net.prefixlen}", "dev", inner, netns=netns)
        _ip("link", "set", inner, "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        # Callers live in the other /24: reach them through the bridge.
        _ip("route", "add", str(self.callers_net), "via", self.gateway, netns=netns)

    # ------------------------------------------------------------------ processes
    def _wrap(self, region_id: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[region_id], *argv]

    async def stop(self) -> None:
        await super().stop()
        self._teardown()

    def _teardown(self) -> None:
        for netns in self.namespaces.values():
            _ip("netns", "del", netns, check=False)
        self.namespaces.clear()
        _ip("link", "del", self.bridge, check=False)
        (STATE / self.tag).unlink(missing_ok=True)


def _free_networks() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """Two /24s of 198.18.0.0/15 that no interface on this machine uses yet."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    taken = {ipaddress.ip_interface(word).network.supernet(new_prefix=24)
             for word in used.split() if "/" in word and word[0].isdigit()
             for _ in [0] if ipaddress.ip_interface(word).ip in POOL}
    subnets = [n for n in POOL.subnets(new_prefix=24) if n not in taken]
    rng = secrets.SystemRandom()
    start = rng.randrange(0, len(subnets) // 2) * 2
    for index in range(start, len(subnets) - 1, 2):
        if subnets[index] not in taken and subnets[index + 1] not in taken:
            return cast(ipaddress.IPv4Network, subnets[index]), cast(ipaddress.IPv4Network, subnets[index + 1])
    raise NetnsError("no free /24 pair left in 198.18.0.0/15")


def _clean_leftovers() -> None:
    """Remove namespaces and bridges of twins whose process died without cleaning up."""
    if not STATE.is_dir():
        return
    for record in STATE.iterdir():
        try:
            owner = json.loads(record.read_text())
            os.kill(int(owner["pid"]), 0)
            continue  # still running
        except (ProcessLookupError, ValueError, KeyError, json.JSONDecodeError):
            pass
        except PermissionError:
            continue
        tag = record.name
        for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                   text=True).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(f"st{tag}"):
                _ip("netns", "del", name, check=False)
        _ip("link", "del", f"st{tag}br", check=False)
        record.unlink(missing_ok=True)
