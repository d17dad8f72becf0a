"""SDES-SRTP on a secure domain (spec §4.5), over TLS and real sockets, decrypted with libsrtp."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.sip.sdp import CryptoAttribute, make_offer, parse_crypto, parse_sdp
from siptwin.ua.client import SipClient
from siptwin.voice.media import telephone_event_packets
from siptwin.voice.srtp import SrtpContext

SUITE_80 = "AES_CM_128_HMAC_SHA1_80"


def _rtp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _key_line(tag: int, suite: str, key: bytes, extra: str = "") -> str:
    return f"{tag} {suite} inline:{base64.b64encode(key).decode()}{extra}"


async def _secure_call(harness, app, document: str, crypto, rtp_port: int, **kwargs):
    voice = app.twiml("/voice", document)
    await harness.provision(DomainPlan("vault", voice_url=voice, acl=["127.0.0.1"], secure=True))
    offer = make_offer("127.0.0.1", rtp_port, 1, crypto=crypto)
    return await harness.call("us1", "sip:1@vault.sip.twilio.com;transport=tls",
                              transport="tls", sdp=offer, **kwargs)


async def test_srtp_call_is_answered_with_our_own_key_and_media_is_srtp_both_ways(harness, app):
    app.twiml("/digits", "<Response><Say>thanks</Say></Response>")
    rtp = _rtp_socket()
    our_key = os.urandom(30)
    document = ('<Response><Gather action="/digits" numDigits="2" timeout="4">'
                "<Say>press two keys</Say></Gather><Say>no input</Say></Response>")
    crypto = [_key_line(1, "AES_CM_256_HMAC_SHA1_80", os.urandom(46)),
              _key_line(2, SUITE_80, our_key)]
    voice = app.twiml("/voice", document)
    await harness.provision(DomainPlan("vault", voice_url=voice, acl=["127.0.0.1"], secure=True))
    host, port = harness.node_port("us1", "tls")
    loop = asyncio.get_running_loop()
    async with SipClient("127.0.0.1", "tls") as client:
        result = await client.invite(host, port, "sip:1@vault.sip.twilio.com;transport=tls",
                                     sdp=make_offer("127.0.0.1", rtp.getsockname()[1], 1,
                                                    crypto=crypto),
                                     hang_up=False)
        twins_line = parse_crypto(parse_sdp(result.final.body).media[0].attribute_values("crypto")[0])
        # Ours: the key we offered under tag 2; the twin's: what its answer announced.
        sender = SrtpContext(twins_line, CryptoAttribute(2, SUITE_80, our_key))
        first, twin_media = await asyncio.wait_for(loop.sock_recvfrom(rtp, 2048), 5)
        received = [first]
        for index, digit in enumerate("73"):
            for packet in telephone_event_packets(digit, 101, 100 + 10 * index,
                                                  1000 + 2000 * index, 0x1234):
                await loop.sock_sendto(rtp, sender.protect(packet), twin_media)
        assert await client.wait_remote_bye(result.call_id, 15)
    with contextlib.suppress(BlockingIOError):
        while True:
            received.append(rtp.recv(2048))
    rtp.close()

    assert result.statuses[-1] == 200
    answer = parse_sdp(result.responses[-1].body)
    (audio,) = answer.media
    assert audio.proto == "RTP/SAVP"
    (line,) = audio.attribute_values("crypto")
    assert parse_crypto(line) == twins_line
    assert twins_line.tag == 2 and twins_line.suite == SUITE_80 and twins_line.mki is None
    assert len(twins_line.key) == 30 and twins_line.key != our_key
    # Every packet the twin sent is SRTP under its announced key, not plain RTP.
    clear = [sender.unprotect(p) for p in received]
    assert len(received) > 20 and all(c is not None for c in clear)
    assert all(len(p) == 12 + 160 + 10 for p in received if p[1] & 0x7F in (0, 8))
    assert {struct.unpack("!BBHII", c[:12])[1] & 0x7F for c in clear} <= {0, 8, 101}
    (hit,) = await app.wait("/digits")
    assert hit.values["Digits"] == "73"
    call = harness.twin.calls.get(result.call_id)
    assert call.media["srtp"] == {"suite": SUITE_80, "rejected": 0, "rejected_rtcp": 0,
                                  "replayed": 0}


@pytest.mark.parametrize("crypto, why", [
    ([_key_line(1, "AES_256_CM_HMAC_SHA1_80", os.urandom(46))], "AES_256_CM_HMAC_SHA1_80"),
    ([_key_line(1, SUITE_80, os.urandom(30), "|2^31|1:4")], "MKI"),
    ([], "without an a=crypto line"),
])
async def test_unkeyable_srtp_offers_are_refused_488(harness, app, crypto, why):
    rtp = _rtp_socket()
    if not crypto:  # a keyless RTP/SAVP offer
        offer = make_offer("127.0.0.1", rtp.getsockname()[1], 1).replace(b"RTP/AVP", b"RTP/SAVP")
        voice = app.twiml("/voice", "<Response><Say>hi</Say></Response>")
        await harness.provision(DomainPlan("vault", voice_url=voice, acl=["127.0.0.1"],
                                           secure=True))
        result = await harness.call("us1", "sip:1@vault.sip.twilio.com", transport="tls",
                                    sdp=offer)
    else:
        result = await _secure_call(harness, app, "<Response><Say>hi</Say></Response>", crypto,
                                    rtp.getsockname()[1])
    rtp.close()
    assert result.statuses[-1] == 488 and not result.established
    assert result.header("X-Twilio-Error").startswith("32208")
    call = harness.twin.calls.get(result.call_id)
    assert call.status != "completed" and call.final_status == 488
    assert any(why in note for note in call.notes)
    assert app.of("/voice") == []


async def test_secure_hold_and_resume_keep_the_key_and_refuse_plain_rtp(harness, app):
    voice = app.twiml("/voice", '<Response><Pause length="5"/></Response>')
    await harness.provision(DomainPlan("vault", voice_url=voice, acl=["127.0.0.1"], secure=True))
    host, port = harness.node_port("us1", "tls")
    rtp = _rtp_socket()
    rtp_port = rtp.getsockname()[1]
    key = os.urandom(30)
    lines = [_key_line(1, SUITE_80, key)]
    offers = [make_offer("127.0.0.1", rtp_port, 1, crypto=lines, direction="sendonly"),
              make_offer("127.0.0.1", rtp_port, 1),  # plain RTP on a secure call
              make_offer("127.0.0.1", rtp_port, 1, crypto=lines)]
    async with SipClient("127.0.0.1", "tls") as client:
        result = await client.invite(host, port, "sip:1@vault.sip.twilio.com;transport=tls",
                                     sdp=make_offer("127.0.0.1", rtp_port, 1, crypto=lines),
                                     reinvites=offers, hold=0.5)
    rtp.close()
    first = parse_sdp(result.final.body)
    held, plain, resumed = result.reinvites
    assert plain is not None and plain.status == 488
    held_sdp, resumed_sdp = parse_sdp(held.body), parse_sdp(resumed.body)
    assert held_sdp.media[0].direction == "recvonly" and resumed_sdp.media[0].direction == "sendrecv"
    assert [d.origin.session_version for d in (first, held_sdp, resumed_sdp)] == ["1", "2", "3"]
    assert {d.media[0].port for d in (first, held_sdp, resumed_sdp)} == {first.media[0].port}
    keys = {parse_crypto(d.media[0].attribute_values("crypto")[0]).key
            for d in (first, held_sdp, resumed_sdp)}
    assert len(keys) == 1 and key not in keys
