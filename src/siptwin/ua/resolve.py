"""RFC 3263 server location for the twin's outbound legs: NAPTR, then SRV, then A/AAAA.

Who answers a query is the caller's choice (``Lookup``): ``<Dial>`` asks the twin's own DNS
data for ``*.twilio.com`` names and a real resolver for everything else. The selection rules
(which record types to ask for, in which order, which transports) live here once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnslib import QTYPE, DNSRecord

# NAPTR service -> transport, in the order the twin tries them when several share an order.
NAPTR_TRANSPORTS = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIXES = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
MAX_TARGETS = 8  # addresses tried for one URI, at most
QUERY_TIMEOUT = 1.5

# (name, record type) -> answer records as dnslib RRs
Lookup = Callable[[str, str], Awaitable[list[Any]]]


class ResolveError(Exception):
    """The name has no usable SIP server (NXDOMAIN, no records, resolver unreachable)."""


@dataclass(frozen=True)
class ServerTarget:
    transport: str
    host: str  # numeric address
    port: int


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def locate(host: str, port: int | None, transport: str | None,
                 lookup: Lookup) -> list[ServerTarget]:
    """The servers to try for ``sip:…@host[:port][;transport=…]``, best first (RFC 3263 §4)."""
    host = host.strip("[]").rstrip(".").lower()
    if _numeric(host):
        chosen = transport or "udp"
        return [ServerTarget(chosen, host, port or DEFAULT_PORTS[chosen])]
    if port is not None:  # §4.2: an explicit port means A/AAAA only
        chosen = transport or "udp"
        return [ServerTarget(chosen, address, port) for address in await _addresses(host, lookup)]
    services: list[tuple[str, str]] = []  # (transport, SRV owner name)
    if transport is None:
        for record in sorted(await lookup(host, "NAPTR"),
                             key=lambda r: (r.rdata.order, r.rdata.preference)):
            service = record.rdata.service.decode("ascii", "replace").upper()
            found = NAPTR_TRANSPORTS.get(service)
            if found is not None and record.rdata.flags.lower() == b"s":
                services.append((found, str(record.rdata.replacement).rstrip(".")))
        if not services:  # §4.1: no NAPTR, so SRV for each transport the twin speaks
            services = [(name, f"{prefix}.{host}") for name, prefix in SRV_PREFIXES.items()]
    else:
        services = [(transport, f"{SRV_PREFIXES[transport]}.{host}")]
    targets: list[ServerTarget] = []
    for chosen, owner in services:
        records = sorted(await lookup(owner, "SRV"),
                         key=lambda r: (r.rdata.priority, -r.rdata.weight))
        for record in records:
            target = str(record.rdata.target).rstrip(".")
            for address in await _addresses(target, lookup, missing_ok=True):
                targets.append(ServerTarget(chosen, address, record.rdata.port))
                if len(targets) >= MAX_TARGETS:
                    return targets
        if targets:
            return targets
    chosen = transport or "udp"  # §4.2: no SRV either: the host's address, default port
    return [ServerTarget(chosen, address, DEFAULT_PORTS[chosen])
            for address in await _addresses(host, lookup)]


async def _addresses(host: str, lookup: Lookup, missing_ok: bool = False) -> list[str]:
    if _numeric(host):
        return [host]
    found = [str(r.rdata) for r in await lookup(host, "A")]
    found += [str(r.rdata) for r in await lookup(host, "AAAA")] if not found else []
    if not found and not missing_ok:
        raise ResolveError(f"{host} has no address")
    return found[:MAX_TARGETS]


# --------------------------------------------------------------------------- resolvers
def system_nameserver(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, int] | None:
    """The first ``nameserver`` of resolv.conf (the system resolver), if any."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return fields[1], 53
    return None


def parse_server(text: str) -> tuple[str, int] | None:
    """``host`` or ``host:port`` (``[v6]:port``) of a resolver setting; None when empty."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return text, 53


async def query_server(server: tuple[str, int], name: str, qtype: str,
                       timeout: float = QUERY_TIMEOUT) -> list[Any]:
    """One question over UDP to ``server``; the answer records (empty on NXDOMAIN).

    Raises ResolveError when the server does not answer or answers garbage."""
    question = DNSRecord.question(name, qtype)
    question.header.id = secrets.randbelow(65536)
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()

    class _Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not reply.done() and len(data) >= 2 and data[:2] == question.pack()[:2]:
                reply.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not reply.done():
                reply.set_exception(exc)

    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(_Protocol, remote_addr=server,
                                                       family=family)
    try:
        transport.sendto(question.pack())
        data = await asyncio.wait_for(reply, timeout)
        answer = DNSRecord.parse(data)
    except (TimeoutError, OSError) as err:
        raise ResolveError(f"resolver {server[0]}:{server[1]} did not answer ({err or 'timeout'})"
                           ) from err
    except Exception as err:  # dnslib raises its own errors on a malformed reply
        raise ResolveError(f"resolver {server[0]}:{server[1]} sent an unreadable reply") from err
    finally:
        transport.close()
    wanted = getattr(QTYPE, qtype)
    return [rr for rr in answer.rr if rr.rtype == wanted]
