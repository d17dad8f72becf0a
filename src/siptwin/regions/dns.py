"""The twin's DNS: every host form of every existing domain resolves to its region node.

A PBX pointed at this server finds a region node the way it would find Twilio (RFC 3263):
NAPTR on the host name, then SRV (``_sips._tcp``, ``_sip._tcp``, ``_sip._udp``), then A. The
answers follow the region catalogue (spec §6.1): ``acme.sip.ie1.twilio.com``,
``acme.sip.dublin.twilio.com`` and ``acme.sip.london-ix.twilio.com`` all lead to the ie1
node's loopback address; the non-localized ``acme.sip.twilio.com`` leads to the catalogue's
default region. Whether a domain exists is asked of the control plane on every query, so a
domain created through the API resolves at once and a deleted one stops resolving.

Everything else is NXDOMAIN: unknown domains, unknown edge labels, foreign names. An existing
name asked for a type it does not have (AAAA, MX, ...) is NOERROR with no answers. The
server is authoritative (AA), not recursive (no RA), and its TTLs are short.

Layout: :class:`DnsResolver` is sans-IO (bytes in, bytes out) and :class:`DnsServer` is the
asyncio adapter serving it over UDP and TCP. :func:`hosts_lines` writes the /etc/hosts lines
for a PBX that cannot change its resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from dnslib import (
    EDNS0,
    NAPTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    A,
    DNSHeader,
    DNSRecord,
)

from ..cloud.store import Store
from ..cloud.view import ControlPlaneView
from .catalogue import SIP_SUFFIX, Catalogue, Region

__all__ = [
    "DnsResolver",
    "DnsServer",
    "DomainDirectory",
    "NAPTR_SERVICES",
    "SRV_SERVICES",
    "TTL",
    "domain_label",
    "existing_domain_labels",
    "hosts_lines",
]

log = logging.getLogger(__name__)

TTL = 30
ZONE = "twilio.com"
# RFC 3263 §4.1: the client takes the most preferred record whose service it supports.
# TLS first, as Twilio recommends it; UDP last.  (order, preference, service, SRV prefix)
NAPTR_SERVICES: tuple[tuple[int, int, str, str], ...] = (
    (10, 10, "SIPS+D2T", "_sips._tcp"),
    (10, 20, "SIP+D2T", "_sip._tcp"),
    (10, 30, "SIP+D2U", "_sip._udp"),
)
# SRV prefix -> the Region attribute holding its port.
SRV_SERVICES: dict[str, str] = {
    "_sips._tcp": "tls_port",
    "_sip._tcp": "tcp_port",
    "_sip._udp": "udp_port",
}
SRV_PRIORITY = 10
SRV_WEIGHT = 100
PLAIN_UDP_LIMIT = 512  # RFC 1035 without EDNS
EDNS_UDP_LIMIT = 1232  # what we advertise and the most we send (DNS flag day 2020)
TCP_IDLE_SECONDS = 10.0


class DomainDirectory(Protocol):
    """What the resolver needs from the control plane (ControlPlaneView has it)."""

    def find_domain(self, domain_name: str) -> object | None: ...


@dataclass(frozen=True)
class _Name:
    """An existing name: the host form, the region it selects, and the SRV service if any."""

    host: str  # "acme.sip.ie1.twilio.com"
    region: Region
    service: str | None  # "_sip._udp" etc. for SRV owner names, None for the host itself


class DnsResolver:
    """Sans-IO: turns one query packet into one response packet (or None to stay silent)."""

    def __init__(self, catalogue: Catalogue, control: DomainDirectory, *, ttl: int = TTL) -> None:
        self.catalogue = catalogue
        self.control = control
        self.ttl = ttl
        # Empty non-terminals (RFC 8020): "sip.twilio.com", "ie1.twilio.com", ... exist because
        # names below them exist, so they are NOERROR/NODATA rather than NXDOMAIN.
        structural = {ZONE, f"sip.{ZONE}"}
        for region in catalogue:
            for label in region.labels:
                structural |= {f"{label}.{ZONE}", f"sip.{label}.{ZONE}"}
        self._structural = frozenset(structural)

    # --- bytes in, bytes out -----------------------------------------------------------------

    def handle(self, data: bytes, *, over_tcp: bool = False) -> bytes | None:
        """The response to ``data``; None for packets that deserve no answer (garbage, responses)."""
        try:
            request = DNSRecord.parse(data)
        except Exception as err:  # dnslib raises DNSError, but also struct/index errors
            log.debug("dns: ignoring a malformed packet of %d bytes: %s", len(data), err)
            return None
        if request.header.qr:
            log.debug("dns: ignoring a response packet (id %d)", request.header.id)
            return None
        reply = self.resolve(request)
        return self._pack(request, reply, over_tcp=over_tcp)

    # --- the answer ------------------------------------------------------------------------

    def resolve(self, request: DNSRecord) -> DNSRecord:
        reply = DNSRecord(
            DNSHeader(
                id=request.header.id, qr=1, aa=1, ra=0, rd=request.header.rd,
                opcode=request.header.opcode,
            ),
            q=request.q if request.questions else None,
        )
        if request.header.opcode != 0:  # only QUERY
            reply.header.rcode = RCODE.NOTIMP
            return reply
        if len(request.questions) != 1:
            reply.header.rcode = RCODE.FORMERR
            return reply
        question = request.q
        if question.qclass not in (1, 255):  # IN, ANY
            reply.header.rcode = RCODE.REFUSED
            return reply
        try:
            self._answer(question.qname, question.qtype, reply)
        except Exception:
            log.warning("dns: lookup of %s failed", question.qname, exc_info=True)
            reply.rr, reply.auth, reply.ar = [], [], []
            reply.header.rcode = RCODE.SERVFAIL
        return reply

    def _answer(self, qname: object, qtype: int, reply: DNSRecord) -> None:
        name = str(qname).rstrip(".").lower()
        found = self.lookup(name)
        if found is None:
            if name in self._structural or self._is_service_parent(name):
                self._add_soa(name, reply, in_answer=qtype in (QTYPE.SOA, QTYPE.ANY)
                              and name == ZONE)
                return
            reply.header.rcode = RCODE.NXDOMAIN
            self._add_soa(name, reply)
            return
        if found.service is not None:
            if qtype in (QTYPE.SRV, QTYPE.ANY):
                reply.add_answer(self._srv(qname, found.region, found.service, found.host))
                reply.add_ar(self._a(found.host, found.region))
            else:
                self._add_soa(name, reply)
            return
        answered = False
        if qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(self._a(qname, found.region))
            answered = True
        if qtype in (QTYPE.NAPTR, QTYPE.ANY):
            for order, preference, service, prefix in NAPTR_SERVICES:
                reply.add_answer(RR(
                    qname, QTYPE.NAPTR, ttl=self.ttl,
                    rdata=NAPTR(order, preference, b"s", service.encode(), b"",
                                f"{prefix}.{found.host}."),
                ))
                reply.add_ar(self._srv(f"{prefix}.{found.host}", found.region, prefix,
                                       found.host))
            if qtype == QTYPE.NAPTR:
                reply.add_ar(self._a(found.host, found.region))
            answered = True
        if not answered:  # AAAA, MX, TXT, ... on an existing name: NODATA
            self._add_soa(name, reply)

    def lookup(self, name: str) -> _Name | None:
        """The existing name ``name`` (lower case, no trailing dot) means, or None."""
        service = None
        host = name
        for prefix in SRV_SERVICES:
            if name.startswith(prefix + "."):
                service, host = prefix, name[len(prefix) + 1 :]
                break
        match = self.catalogue.match_host(host)
        if match is None or match.region is None:
            return None
        if self.control.find_domain(match.domain_name) is None:
            return None
        return _Name(host, match.region, service)

    def _is_service_parent(self, name: str) -> bool:
        """``_udp.<host>`` / ``_tcp.<host>`` exist when ``<host>`` does."""
        for proto in ("_udp.", "_tcp."):
            if name.startswith(proto):
                found = self.lookup(name[len(proto) :])
                return found is not None and found.service is None
        return False

    # --- records ---------------------------------------------------------------------------

    def _a(self, owner: object, region: Region) -> RR:
        return RR(owner, QTYPE.A, ttl=self.ttl, rdata=A(region.address))

    def _srv(self, owner: object, region: Region, service: str, host: str) -> RR:
        port = getattr(region, SRV_SERVICES[service])
        return RR(owner, QTYPE.SRV, ttl=self.ttl,
                  rdata=SRV(SRV_PRIORITY, SRV_WEIGHT, port, f"{host}."))

    def _add_soa(self, name: str, reply: DNSRecord, *, in_answer: bool = False) -> None:
        """The zone's SOA in the authority section: its minimum is the negative-cache TTL."""
        if name != ZONE and not name.endswith("." + ZONE):
            return  # not our zone: no SOA to cite
        record = RR(f"{ZONE}.", QTYPE.SOA, ttl=self.ttl, rdata=SOA(
            f"ns.siptwin.{ZONE}.", f"hostmaster.siptwin.{ZONE}.",
            (1, 3600, 600, 86400, self.ttl),
        ))
        if in_answer:
            reply.add_answer(record)
        else:
            reply.add_auth(record)

    # --- size limits -----------------------------------------------------------------------

    def _pack(self, request: DNSRecord, reply: DNSRecord, *, over_tcp: bool) -> bytes:
        opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if over_tcp:
            limit = 65535
        elif opt is not None:
            limit = max(PLAIN_UDP_LIMIT, min(int(opt.rclass), EDNS_UDP_LIMIT))
        else:
            limit = PLAIN_UDP_LIMIT
        if opt is not None:
            reply.add_ar(EDNS0(udp_len=EDNS_UDP_LIMIT))
        packed = reply.pack()
        if len(packed) <= limit:
            return packed
        # Too big: first drop the additional records (keeping OPT), then truncate (TC).
        reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
        reply.set_header_qa()
        packed = reply.pack()
        if len(packed) <= limit:
            return packed
        reply.rr, reply.auth = [], []
        reply.header.tc = 1
        reply.set_header_qa()
        return reply.pack()


# --- asyncio adapters ------------------------------------------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, resolver: DnsResolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            response = self.resolver.handle(data)
        except Exception:  # never let one packet take the server down
            log.debug("dns: failed to answer %s", addr, exc_info=True)
            return
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: UDP error: %s", exc)


class DnsServer:
    """The resolver served over UDP (and TCP, same port) on one address.

    ``port=0`` picks a free port for both transports; :attr:`address` tells which.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        control: DomainDirectory,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tcp: bool = True,
        ttl: int = TTL,
    ) -> None:
        self.resolver = DnsResolver(catalogue, control, ttl=ttl)
        self.host = host
        self.port = port
        self.tcp = tcp
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._address: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the DNS server is not started")
        return self._address

    async def start(self) -> None:
        if self._address is not None:
            return
        loop = asyncio.get_running_loop()
        attempts = 20 if self.port == 0 else 1
        for attempt in range(attempts):
            try:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self.resolver), local_addr=(self.host, self.port)
                )
            except OSError as err:
                raise OSError(err.errno, f"DNS: cannot bind UDP {self.host}:{self.port}: "
                                         f"{err.strerror}") from err
            port = udp.get_extra_info("sockname")[1]
            if not self.tcp:
                break
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
                break
            except OSError as err:
                udp.close()
                if attempt + 1 == attempts:
                    raise OSError(err.errno, f"DNS: cannot bind TCP {self.host}:{port}: "
                                             f"{err.strerror}") from err
        self._udp = udp
        self._address = (self.host, port)
        log.debug("dns: serving on %s:%d (udp%s)", self.host, port, "+tcp" if self.tcp else "")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
            await asyncio.sleep(0)  # the transport closes its socket on the next loop pass
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.close()
            await self._tcp.wait_closed()
            self._tcp = None
        self._address = None

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RFC 7766: two-byte length, message; several queries may share a connection."""
        self._tcp_writers.add(writer)
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                (length,) = struct.unpack("!H", header)
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_SECONDS)
                response = self.resolver.handle(data, over_tcp=True)
                if response is None:
                    break  # garbage on a stream: hang up
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.debug("dns: TCP connection failed", exc_info=True)
        finally:
            self._tcp_writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# --- /etc/hosts ------------------------------------------------------------------------------


def domain_label(name: str) -> str:
    """``acme`` from ``acme``, ``acme.sip.twilio.com`` or ``ACME.sip.twilio.com.``."""
    label = name.strip().rstrip(".").lower()
    if label.endswith(SIP_SUFFIX):
        label = label[: -len(SIP_SUFFIX)]
    if not label or label.startswith(".") or label.endswith(".") or ".." in label:
        raise ValueError(f"not a SIP domain name or label: {name!r}")
    return label


def hosts_lines(catalogue: Catalogue, domain_labels: list[str]) -> list[str]:
    """/etc/hosts lines sending every host form of each domain to its region's address.

    One line per region per domain (``127.0.1.3\\tacme.sip.ie1.twilio.com acme.sip.dublin…``),
    which keeps lines short for resolvers that limit aliases. Labels may also be given as full
    domain names (``acme.sip.twilio.com``); duplicates are written once.
    """
    labels = list(dict.fromkeys(domain_label(name) for name in domain_labels))
    return [
        f"{region.address}\t{' '.join(region.host_forms(label))}"
        for label in labels
        for region in catalogue
    ]


def existing_domain_labels(source: ControlPlaneView | Store | Path | str) -> list[str]:
    """Labels of every existing domain, sorted: the ones whose host names resolve.

    ``source`` is the control plane's view, its :class:`Store`, or a state directory or
    database file (FileNotFoundError when there is none). Reads the global host-name registry
    (one name while any region holds a copy of the domain).
    """
    if isinstance(source, ControlPlaneView):
        names = source.routed_domain_names()
    else:
        view = ControlPlaneView(source)
        try:
            names = view.routed_domain_names()
        finally:
            view.close()
    return sorted(
        name[: -len(SIP_SUFFIX)] for name in names if name.endswith(SIP_SUFFIX)
    )
