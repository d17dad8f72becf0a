"""RFC 3263 server location (ua/resolve.py) against a zone held in a dict."""

from __future__ import annotations

import pytest
from dnslib import NAPTR, QTYPE, RR, SRV, A

from siptwin.ua.resolve import ResolveError, ServerTarget, locate, parse_server

ZONE = {
    ("pbx.example.test", "NAPTR"): [
        RR("pbx.example.test", QTYPE.NAPTR, rdata=NAPTR(20, 10, b"s", b"SIP+D2U", b"",
                                                        "_sip._udp.pbx.example.test")),
        RR("pbx.example.test", QTYPE.NAPTR, rdata=NAPTR(10, 10, b"s", b"SIPS+D2T", b"",
                                                        "_sips._tcp.pbx.example.test")),
        RR("pbx.example.test", QTYPE.NAPTR, rdata=NAPTR(5, 10, b"s", b"SIP+D2X", b"",
                                                        "_sip._sctp.pbx.example.test")),
    ],
    ("_sips._tcp.pbx.example.test", "SRV"): [
        RR("_sips._tcp.pbx.example.test", QTYPE.SRV, rdata=SRV(20, 0, 5071, "b.example.test")),
        RR("_sips._tcp.pbx.example.test", QTYPE.SRV, rdata=SRV(10, 0, 5061, "a.example.test")),
    ],
    ("_sip._udp.pbx.example.test", "SRV"): [
        RR("_sip._udp.pbx.example.test", QTYPE.SRV, rdata=SRV(10, 0, 5080, "a.example.test")),
    ],
    ("_sip._tcp.srvonly.example.test", "SRV"): [
        RR("_sip._tcp.srvonly.example.test", QTYPE.SRV, rdata=SRV(0, 0, 5062, "a.example.test")),
    ],
    ("a.example.test", "A"): [RR("a.example.test", QTYPE.A, rdata=A("192.0.2.1"))],
    ("b.example.test", "A"): [RR("b.example.test", QTYPE.A, rdata=A("192.0.2.2"))],
    ("plain.example.test", "A"): [RR("plain.example.test", QTYPE.A, rdata=A("192.0.2.9"))],
}


async def lookup(name: str, qtype: str) -> list:
    asked.append(f"{qtype} {name}")
    return ZONE.get((name, qtype), [])


asked: list[str] = []


async def test_naptr_order_picks_tls_then_srv_priority():
    assert await locate("pbx.example.test", None, None, lookup) == [
        ServerTarget("tls", "192.0.2.1", 5061), ServerTarget("tls", "192.0.2.2", 5071)]


async def test_a_transport_in_the_uri_skips_naptr():
    asked.clear()
    assert await locate("pbx.example.test", None, "udp", lookup) == [
        ServerTarget("udp", "192.0.2.1", 5080)]
    assert not any(q.startswith("NAPTR") for q in asked)


async def test_no_naptr_tries_srv_for_each_transport():
    assert await locate("srvonly.example.test", None, None, lookup) == [
        ServerTarget("tcp", "192.0.2.1", 5062)]


async def test_an_explicit_port_or_no_records_means_the_address():
    assert await locate("plain.example.test", 5070, None, lookup) == [
        ServerTarget("udp", "192.0.2.9", 5070)]
    assert await locate("plain.example.test", None, None, lookup) == [
        ServerTarget("udp", "192.0.2.9", 5060)]
    assert await locate("192.0.2.7", None, "tls", lookup) == [ServerTarget("tls", "192.0.2.7", 5061)]


async def test_a_name_with_nothing_is_an_error():
    with pytest.raises(ResolveError):
        await locate("nothing.example.test", None, None, lookup)


def test_resolver_setting_forms():
    assert parse_server("") is None
    assert parse_server("10.0.0.53") == ("10.0.0.53", 53)
    assert parse_server("127.0.0.1:5300") == ("127.0.0.1", 5300)
    assert parse_server("[::1]:5300") == ("::1", 5300)
