"""The twin's DNS over real sockets: every host form of every existing domain resolves to
its region (spec §6.1), RFC 3263 NAPTR/SRV lead to the right ports, and everything else is
NXDOMAIN — all checked live against the control plane."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from dnslib import CLASS, EDNS0, QTYPE, RCODE, DNSQuestion, DNSRecord

from siptwin.cloud.model import Account
from siptwin.cloud.store import Store
from siptwin.cloud.view import ControlPlaneView
from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
from siptwin.regions.dns import (
    DnsResolver,
    DnsServer,
    existing_domain_labels,
    hosts_lines,
)

# Distinct ports per transport, so an SRV answer naming the wrong one cannot pass.
UDP_PORT, TCP_PORT, TLS_PORT = 5070, 5071, 5072


@dataclass
class Control:
    store: Store
    account: Account
    view: ControlPlaneView

    def create(self, label: str, region: str = "us1") -> str:
        domain = self.store.create_domain(
            self.account, region, {"domain_name": f"{label}.sip.twilio.com"}
        )
        return domain.sid

    def delete(self, sid: str, region: str = "us1") -> None:
        assert self.store.delete_domain(self.account.sid, region, sid)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    base = Catalogue.load(default_catalogue_dir())
    return Catalogue([
        replace(r, udp_port=UDP_PORT, tcp_port=TCP_PORT, tls_port=TLS_PORT) for r in base
    ])


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    store = Store.open(tmp_path / "state")
    account = store.ensure_master_account()
    view = ControlPlaneView(store)
    control = Control(store, account, view)
    control.create("acme")
    yield control
    view.close()
    store.close()


@pytest.fixture
async def server(catalogue: Catalogue, control: Control) -> AsyncIterator[DnsServer]:
    async with DnsServer(catalogue, control.view, "127.0.0.1", 0) as dns:
        yield dns


async def ask(
    server: DnsServer, name: str, qtype: str = "A", *, tcp: bool = False, edns: bool = False
) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    if edns:
        query.add_ar(EDNS0(udp_len=4096))
    host, port = server.address
    raw = await asyncio.to_thread(query.send, host, port, tcp=tcp, timeout=2)
    reply = DNSRecord.parse(raw)
    assert reply.header.id == query.header.id
    assert reply.header.qr == 1 and reply.header.aa == 1
    return reply


def answers(reply: DNSRecord, qtype: int) -> list:
    return [rr for rr in reply.rr if rr.rtype == qtype]


async def test_every_host_form_of_an_existing_domain_resolves_to_its_regions_address(
    server: DnsServer, catalogue: Catalogue
) -> None:
    asked = []
    for region in catalogue:
        for host in region.host_forms("acme"):
            reply = await ask(server, host)
            assert reply.header.rcode == RCODE.NOERROR, host
            assert [str(rr.rdata) for rr in answers(reply, QTYPE.A)] == [region.address], host
            assert all(0 < rr.ttl <= 60 for rr in reply.rr)
            asked.append(host)
    # legacy id, edge name and -ix forms of all eight regions, plus the non-localized name
    assert len(catalogue) == 8
    assert {"acme.sip.ie1.twilio.com", "acme.sip.dublin.twilio.com", "acme.sip.london-ix.twilio.com",
            "acme.sip.ie1-ix.twilio.com", "acme.sip.sao-paulo-ix.twilio.com",
            "acme.sip.twilio.com"} <= set(asked)
    assert len(asked) == sum(len(r.labels) for r in catalogue) + 1


async def test_the_non_localized_name_resolves_to_the_default_region(
    server: DnsServer, catalogue: Catalogue
) -> None:
    assert catalogue.default.id == "us1"
    reply = await ask(server, "acme.sip.twilio.com")
    assert str(reply.a.rdata) == catalogue["us1"].address


async def test_names_are_case_insensitive_and_echoed_as_asked(server: DnsServer) -> None:
    reply = await ask(server, "ACME.Sip.Dublin.Twilio.COM.")
    assert str(reply.a.rdata) == "127.0.1.3"
    assert str(reply.a.rname) == "ACME.Sip.Dublin.Twilio.COM."


@pytest.mark.parametrize(
    ("service", "port"),
    [("_sip._udp", UDP_PORT), ("_sip._tcp", TCP_PORT), ("_sips._tcp", TLS_PORT)],
)
async def test_srv_names_the_transports_port_and_the_host_itself(
    server: DnsServer, service: str, port: int
) -> None:
    for host, address in [("acme.sip.frankfurt.twilio.com", "127.0.1.4"),
                          ("acme.sip.twilio.com", "127.0.1.1")]:
        reply = await ask(server, f"{service}.{host}", "SRV")
        assert reply.header.rcode == RCODE.NOERROR
        [srv] = answers(reply, QTYPE.SRV)
        assert srv.rdata.port == port
        assert str(srv.rdata.target) == f"{host}."
        # the target's address comes along in the additional section
        assert [(str(rr.rname), str(rr.rdata)) for rr in reply.ar if rr.rtype == QTYPE.A] == [
            (f"{host}.", address)]


async def test_naptr_offers_tls_tcp_and_udp_in_rfc3263_form(server: DnsServer) -> None:
    host = "acme.sip.tokyo.twilio.com"
    reply = await ask(server, host, "NAPTR")
    records = sorted(answers(reply, QTYPE.NAPTR), key=lambda rr: (rr.rdata.order, rr.rdata.preference))
    assert [(rr.rdata.flags, rr.rdata.service, str(rr.rdata.replacement)) for rr in records] == [
        (b"s", b"SIPS+D2T", f"_sips._tcp.{host}."),
        (b"s", b"SIP+D2T", f"_sip._tcp.{host}."),
        (b"s", b"SIP+D2U", f"_sip._udp.{host}."),
    ]
    assert all(rr.rdata.regexp == b"" for rr in records)
    additional_srv = {str(rr.rname): rr.rdata.port for rr in reply.ar if rr.rtype == QTYPE.SRV}
    assert additional_srv == {f"_sips._tcp.{host}.": TLS_PORT, f"_sip._tcp.{host}.": TCP_PORT,
                              f"_sip._udp.{host}.": UDP_PORT}
    assert [str(rr.rdata) for rr in reply.ar if rr.rtype == QTYPE.A] == ["127.0.1.6"]


async def test_following_naptr_then_srv_then_a_reaches_the_region_node(server: DnsServer) -> None:
    """What an RFC 3263 client does, one query at a time."""
    naptr = await ask(server, "acme.sip.sydney-ix.twilio.com", "NAPTR")
    udp = next(rr for rr in naptr.rr if rr.rdata.service == b"SIP+D2U")
    srv = (await ask(server, str(udp.rdata.replacement), "SRV")).a.rdata
    a = (await ask(server, str(srv.target), "A")).a.rdata
    assert (str(a), srv.port) == ("127.0.1.8", UDP_PORT)


@pytest.mark.parametrize(
    ("name", "qtype"),
    [
        ("nobody.sip.twilio.com", "A"),  # unknown domain
        ("nobody.sip.ie1.twilio.com", "A"),
        ("nobody.sip.ie1.twilio.com", "NAPTR"),
        ("_sip._udp.nobody.sip.ie1.twilio.com", "SRV"),
        ("acme.sip.mars.twilio.com", "A"),  # unknown edge label
        ("acme.sip.roaming.twilio.com", "A"),
        ("_sip._udp.acme.sip.mars.twilio.com", "SRV"),
        ("_sip._sctp.acme.sip.twilio.com", "SRV"),  # no such service
        ("_sips._udp.acme.sip.twilio.com", "SRV"),
        ("x.acme.sip.twilio.com", "A"),  # a sub-domain that was never created
        ("example.com", "A"),  # foreign names
        ("acme.sip.twilio.com.example.com", "A"),
        ("api.twilio.com", "A"),
        ("localhost", "A"),
    ],
)
async def test_anything_but_an_existing_host_form_is_nxdomain(
    server: DnsServer, name: str, qtype: str
) -> None:
    reply = await ask(server, name, qtype)
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert reply.rr == []


async def test_an_existing_name_without_the_asked_type_is_noerror_and_empty(
    server: DnsServer,
) -> None:
    for name, qtype in [("acme.sip.dublin.twilio.com", "AAAA"), ("acme.sip.twilio.com", "AAAA"),
                        ("acme.sip.ie1.twilio.com", "MX"), ("acme.sip.ie1.twilio.com", "SRV"),
                        ("_sip._udp.acme.sip.ie1.twilio.com", "A"),
                        # empty non-terminals exist too (RFC 8020)
                        ("sip.twilio.com", "A"), ("sip.dublin.twilio.com", "A"),
                        ("_udp.acme.sip.ie1.twilio.com", "A")]:
        reply = await ask(server, name, qtype)
        assert (reply.header.rcode, reply.rr) == (RCODE.NOERROR, []), (name, qtype)
        # the zone's SOA tells resolvers how long to cache the negative answer
        assert [rr.rtype for rr in reply.auth] == [QTYPE.SOA]


async def test_a_domain_resolves_as_soon_as_it_is_created_and_stops_once_deleted(
    server: DnsServer, control: Control
) -> None:
    assert (await ask(server, "late.sip.singapore.twilio.com")).header.rcode == RCODE.NXDOMAIN
    sid = control.create("late", region="ie1")
    reply = await ask(server, "late.sip.singapore.twilio.com")
    assert (reply.header.rcode, str(reply.a.rdata)) == (RCODE.NOERROR, "127.0.1.5")
    srv = await ask(server, "_sip._tcp.late.sip.twilio.com", "SRV")
    assert srv.a.rdata.port == TCP_PORT
    control.delete(sid, region="ie1")
    for name, qtype in [("late.sip.singapore.twilio.com", "A"),
                        ("_sip._tcp.late.sip.twilio.com", "SRV")]:
        assert (await ask(server, name, qtype)).header.rcode == RCODE.NXDOMAIN


async def test_garbage_gets_no_answer_and_the_server_keeps_answering(server: DnsServer) -> None:
    a_response = DNSRecord.question("acme.sip.twilio.com").reply().pack()
    five_questions_none_present = struct.pack("!6H", 7, 0x0100, 5, 0, 0, 0)
    garbage = [b"", b"\x00", b"\xff" * 11, bytes(range(256)) * 2, a_response,
               five_questions_none_present, b"\x12\x34\x01\x00\x00\x01" + b"\xc0" * 30]
    query = DNSRecord.question("acme.sip.dublin.twilio.com")

    def exchange() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            for packet in garbage:
                sock.sendto(packet, server.address)
            sock.sendto(query.pack(), server.address)
            return sock.recv(4096)  # the first datagram back answers the real query

    reply = DNSRecord.parse(await asyncio.to_thread(exchange))
    assert reply.header.id == query.header.id
    assert str(reply.a.rdata) == "127.0.1.3"
    assert str((await ask(server, "acme.sip.us2.twilio.com")).a.rdata) == "127.0.1.2"


async def test_queries_over_tcp_get_the_same_answers(server: DnsServer) -> None:
    reply = await ask(server, "acme.sip.frankfurt-ix.twilio.com", tcp=True)
    assert str(reply.a.rdata) == "127.0.1.4"
    reply = await ask(server, "acme.sip.de1.twilio.com", "NAPTR", tcp=True)
    assert len(answers(reply, QTYPE.NAPTR)) == 3

    def garbage_then_close() -> bytes:
        with socket.create_connection(server.address, timeout=2) as sock:
            sock.sendall(b"\x00\x05hello")
            return sock.recv(100)

    assert await asyncio.to_thread(garbage_then_close) == b""  # hung up, no crash
    assert (await ask(server, "acme.sip.au1.twilio.com", tcp=True)).header.rcode == RCODE.NOERROR


async def test_edns_queries_get_an_opt_record_back(server: DnsServer) -> None:
    reply = await ask(server, "acme.sip.ie1.twilio.com", "NAPTR", edns=True)
    assert [rr.rtype for rr in reply.ar].count(QTYPE.OPT) == 1
    assert len(answers(reply, QTYPE.NAPTR)) == 3


def test_a_long_name_fits_plain_udp_by_dropping_the_additional_records(
    catalogue: Catalogue, control: Control
) -> None:
    label = "a" * 50
    control.create(label)
    resolver = DnsResolver(catalogue, control.view)
    query = DNSRecord.question(f"{label}.sip.sao-paulo-ix.twilio.com", "NAPTR")
    raw = resolver.handle(query.pack())
    assert raw is not None and len(raw) <= 512
    reply = DNSRecord.parse(raw)
    assert (reply.header.tc, len(answers(reply, QTYPE.NAPTR)), reply.ar) == (0, 3, [])
    query.add_ar(EDNS0(udp_len=1232))  # room enough: the SRV and A hints come along
    reply = DNSRecord.parse(resolver.handle(query.pack()))
    assert len([rr for rr in reply.ar if rr.rtype in (QTYPE.SRV, QTYPE.A)]) == 4


def test_a_failing_control_plane_is_servfail_not_a_crash(catalogue: Catalogue) -> None:
    class Broken:
        def find_domain(self, domain_name: str) -> None:
            raise RuntimeError("database is locked")

    raw = DnsResolver(catalogue, Broken()).handle(DNSRecord.question("acme.sip.twilio.com").pack())
    assert raw is not None and DNSRecord.parse(raw).header.rcode == RCODE.SERVFAIL


def test_other_classes_and_opcodes_are_refused(catalogue: Catalogue, control: Control) -> None:
    resolver = DnsResolver(catalogue, control.view)
    chaos = DNSRecord(q=DNSQuestion("acme.sip.twilio.com", QTYPE.A, CLASS.CH))
    assert DNSRecord.parse(resolver.handle(chaos.pack())).header.rcode == RCODE.REFUSED
    notify = DNSRecord.question("acme.sip.twilio.com")
    notify.header.opcode = 4
    assert DNSRecord.parse(resolver.handle(notify.pack())).header.rcode == RCODE.NOTIMP


async def test_close_releases_the_port(catalogue: Catalogue, control: Control) -> None:
    dns = DnsServer(catalogue, control.view)
    await dns.start()
    host, port = dns.address
    await dns.close()
    with pytest.raises(RuntimeError):
        _ = dns.address
    again = DnsServer(catalogue, control.view, host, port)
    await again.start()
    assert again.address == (host, port)
    await again.close()


def test_hosts_lines_send_each_regions_host_forms_to_its_address(catalogue: Catalogue) -> None:
    lines = hosts_lines(catalogue, ["acme"])
    assert len(lines) == 8
    assert ("127.0.1.3\tacme.sip.ie1.twilio.com acme.sip.dublin.twilio.com"
            " acme.sip.london-ix.twilio.com acme.sip.ie1-ix.twilio.com") in lines
    assert ("127.0.1.1\tacme.sip.twilio.com acme.sip.us1.twilio.com acme.sip.ashburn.twilio.com"
            " acme.sip.ashburn-ix.twilio.com acme.sip.us1-ix.twilio.com") in lines
    for line in lines:
        address, names = line.split("\t")
        region = catalogue.by_address(address)
        assert region is not None and names.split() == region.host_forms("acme")


def test_hosts_lines_take_labels_or_domain_names_once_each(catalogue: Catalogue) -> None:
    lines = hosts_lines(catalogue, ["acme", "Beta.sip.twilio.com.", "acme.sip.twilio.com"])
    assert len(lines) == 16
    first = next(iter(catalogue))
    assert lines[8] == f"{first.address}\t{' '.join(first.host_forms('beta'))}"
    assert hosts_lines(catalogue, []) == []
    with pytest.raises(ValueError):
        hosts_lines(catalogue, [""])


async def test_hosts_lines_agree_with_the_dns(server: DnsServer, catalogue: Catalogue) -> None:
    for line in hosts_lines(catalogue, ["acme"]):
        address, names = line.split("\t")
        for name in names.split():
            assert str((await ask(server, name)).a.rdata) == address


def test_existing_domain_labels_lists_every_domain_once(control: Control, tmp_path: Path) -> None:
    control.create("beta", region="ie1")
    control.create("beta", region="au1")  # a second copy of the same host name
    sid = control.create("gone")
    control.delete(sid)
    assert existing_domain_labels(control.store) == ["acme", "beta"]
    assert existing_domain_labels(tmp_path / "state") == ["acme", "beta"]
    with pytest.raises(FileNotFoundError):
        existing_domain_labels(tmp_path / "nowhere")
