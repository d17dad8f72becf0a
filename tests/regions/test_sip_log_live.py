"""`siptwin up -v` logs every SIP message in and out on one line; `-vv` logs the full text."""

from __future__ import annotations

import logging

from siptwin.cli import build_parser
from siptwin.ua.client import SipClient


async def test_every_message_in_and_out_is_logged_on_one_line_at_info(harness, caplog):
    caplog.set_level(logging.INFO, logger="siptwin.sip")
    host, port = harness.node_port("us1")
    async with SipClient("127.0.0.1") as client:
        responses = await client.request("OPTIONS", host, port, "sip:acme.sip.twilio.com")
    lines = [r.getMessage() for r in caplog.records if r.name == "siptwin.sip"]
    assert responses and responses[-1].status == 200
    assert any(line.startswith("us1 <- udp:127.0.0.1:") and "OPTIONS sip:acme.sip.twilio.com"
               in line and "(Call-ID " in line for line in lines), lines
    assert any(line.startswith("us1 -> udp:127.0.0.1:") and "SIP/2.0 200" in line
               for line in lines), lines
    assert all("\n" not in line for line in lines)


async def test_full_text_at_debug(harness, caplog):
    caplog.set_level(logging.DEBUG, logger="siptwin.sip")
    host, port = harness.node_port("us1")
    async with SipClient("127.0.0.1") as client:
        await client.request("OPTIONS", host, port, "sip:acme.sip.twilio.com")
    texts = [r.getMessage() for r in caplog.records if r.name == "siptwin.sip"]
    assert any("OPTIONS sip:acme.sip.twilio.com SIP/2.0" in t and "\nCSeq: 1 OPTIONS" in t
               for t in texts), texts


def test_up_counts_v_flags():
    parser = build_parser()
    assert parser.parse_args(["up", "-v"]).verbose == 1
    assert parser.parse_args(["up", "-vv"]).verbose == 2
    assert parser.parse_args(["up"]).verbose == 0
