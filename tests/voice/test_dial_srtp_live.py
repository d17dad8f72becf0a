"""<Dial><Sip> to a device registered on a secure domain is SDES-SRTP (spec §4.5, §4.8): the
twin offers its own key, and the bridge decrypts and re-encrypts between a plain caller and
an SRTP device, and between an SRTP caller and a plain device. Real sockets; the device's
side is decrypted with libsrtp."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

from siptwin.harness.provision import DomainPlan
from siptwin.sip.sdp import CryptoAttribute, make_offer, parse_crypto, parse_sdp
from siptwin.ua.client import Auth, SipClient
from siptwin.voice.srtp import SrtpContext
from tests.support import PASSWORD

SUITE = "AES_CM_128_HMAC_SHA1_80"
FROM_CALLER, FROM_DEVICE = b"\x11" * 160, b"\x22" * 160


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _rtp(sequence: int, payload: bytes, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, ssrc) + payload


async def _receive(sock: socket.socket, seconds: float) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 2048), deadline - loop.time()))
        except TimeoutError:
            break
    return got


async def _device(harness, domain: str, rtp: socket.socket, key: bytes | None) -> SipClient:
    """alice@domain, registered over UDP, answering with SDES key ``key`` (None: plain)."""
    phone = SipClient("127.0.0.1", "udp")
    await phone.start()
    crypto = (f"1 {SUITE} inline:{base64.b64encode(key).decode()}",) if key else ()
    phone.answer_calls(make_offer("127.0.0.1", rtp.getsockname()[1], 7, crypto=crypto),
                       status=200, after=0.1)
    host, port = harness.node_port("us1")
    responses = await phone.request(
        "REGISTER", host, port, f"sip:{domain}", to_uri=f"sip:alice@{domain}",
        headers=[("Contact", f"<sip:alice@127.0.0.1:{phone.local_port}>"), ("Expires", "600")],
        auth=Auth("alice", PASSWORD))
    assert responses[-1].status == 200
    return phone


async def _answered(phone: SipClient) -> None:
    while not any(call.answered for call in phone.incoming):
        phone.incoming_event.clear()
        await phone.incoming_event.wait()


def _media_of(sdp: bytes) -> tuple[str, int]:
    description = parse_sdp(sdp)
    return description.connection_of(description.media[0]).host, description.media[0].port


async def _dial_noted(harness, call_id: str):
    """The caller's record once the <Dial> has ended and written its notes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        record = harness.twin.calls.get(call_id)
        if loop.time() > deadline or any(n.startswith("<Dial> CA") for n in record.notes):
            return record
        await asyncio.sleep(0.1)


async def _exchange(caller_rtp, twin_rtp, caller_protect, device_rtp, leg_rtp, device_protect):
    loop = asyncio.get_running_loop()
    for sequence in range(25):
        await loop.sock_sendto(caller_rtp, caller_protect(_rtp(sequence, FROM_CALLER, 0xCA11)),
                               twin_rtp)
        await loop.sock_sendto(device_rtp, device_protect(_rtp(sequence, FROM_DEVICE, 0xDE71)),
                               leg_rtp)
        await asyncio.sleep(0.02)
    return await asyncio.gather(_receive(device_rtp, 1.0), _receive(caller_rtp, 1.0))


async def _plain_caller_dials_vault(harness, app) -> None:
    """acme (plain, the caller's) dials alice registered on vault (secure)."""
    voice = app.twiml("/voice", '<Response><Dial timeout="8">'
                                "<Sip>sip:alice@vault.sip.twilio.com</Sip></Dial></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    await harness.provision(DomainPlan("vault", voice_url=voice, secure=True,
                                       credentials=[("alice", PASSWORD)],
                                       sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))


async def test_a_plain_caller_dials_an_srtp_device_of_a_secure_domain(harness, app):
    await _plain_caller_dials_vault(harness, app)
    device_key = os.urandom(30)
    caller_rtp, device_rtp = _udp(), _udp()
    device = await _device(harness, "vault.sip.twilio.com", device_rtp, device_key)
    caller = SipClient("127.0.0.1", "udp")
    await caller.start()
    try:
        host, port = harness.node_port("us1")
        call = asyncio.ensure_future(caller.invite(
            host, port, "sip:1@acme.sip.us1.twilio.com", hold=4.0,
            sdp=make_offer("127.0.0.1", caller_rtp.getsockname()[1], 3)))
        await asyncio.wait_for(caller.answered.wait(), 10)
        await asyncio.wait_for(_answered(device), 5)
        offer = parse_sdp(device.incoming[0].invite.body)
        (audio,) = offer.media
        assert audio.proto == "RTP/SAVP"
        (line,) = audio.attribute_values("crypto")
        twins = parse_crypto(line)
        assert twins.suite == SUITE and len(twins.key) == 30 and twins.mki is None
        # The device's libsrtp: the twin's key for what arrives, its own for what it sends.
        keys = SrtpContext(twins, CryptoAttribute(1, SUITE, device_key))
        at_device, at_caller = await _exchange(
            caller_rtp, _media_of(caller.last.final.body), lambda p: p,
            device_rtp, _media_of(device.incoming[0].invite.body), keys.protect)
        result = await asyncio.wait_for(call, 15)
        record = await _dial_noted(harness, result.call_id)  # the device still answers BYE
    finally:
        await caller.close()
        await device.close()
    decrypted = [keys.unprotect(packet) for packet in at_device]
    heard_by_device = [p for p in decrypted if p is not None and p[12:] == FROM_CALLER]
    assert not any(p[12:] == FROM_CALLER for p in at_device), "plain RTP reached the device"
    heard_by_caller = [p for p in at_caller if p[12:] == FROM_DEVICE]
    print(f"caller->device {len(heard_by_device)}/25 (SRTP), device->caller "
          f"{len(heard_by_caller)}/25 (plain)")
    assert len(heard_by_device) >= 20 and len(heard_by_caller) >= 20
    assert result.established
    assert any(n.startswith("<Dial> media relayed:") and "SRTP packets" in n
               for n in record.notes), record.notes


async def test_an_srtp_caller_dials_a_plain_device(harness, app):
    voice = app.twiml("/voice", '<Response><Dial timeout="8">'
                                "<Sip>sip:alice@acme.sip.twilio.com</Sip></Dial></Response>")
    await harness.provision(DomainPlan("vault", voice_url=voice, acl=["127.0.0.1"],
                                       secure=True))
    await harness.provision(DomainPlan("acme", voice_url=voice, sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    caller_key = os.urandom(30)
    caller_rtp, device_rtp = _udp(), _udp()
    device = await _device(harness, "acme.sip.twilio.com", device_rtp, None)
    caller = SipClient("127.0.0.1", "tls")
    await caller.start()
    try:
        host, port = harness.node_port("us1", "tls")
        call = asyncio.ensure_future(caller.invite(
            host, port, "sip:1@vault.sip.twilio.com;transport=tls", hold=4.0,
            sdp=make_offer("127.0.0.1", caller_rtp.getsockname()[1], 3,
                           crypto=(f"1 {SUITE} inline:{base64.b64encode(caller_key).decode()}",))))
        await asyncio.wait_for(caller.answered.wait(), 10)
        await asyncio.wait_for(_answered(device), 5)
        assert parse_sdp(device.incoming[0].invite.body).media[0].proto == "RTP/AVP"
        (line,) = parse_sdp(caller.last.final.body).media[0].attribute_values("crypto")
        keys = SrtpContext(parse_crypto(line), CryptoAttribute(1, SUITE, caller_key))
        at_device, at_caller = await _exchange(
            caller_rtp, _media_of(caller.last.final.body), keys.protect,
            device_rtp, _media_of(device.incoming[0].invite.body), lambda p: p)
        result = await asyncio.wait_for(call, 15)
    finally:
        await caller.close()
        await device.close()
    heard_by_device = [p for p in at_device if p[12:] == FROM_CALLER]
    decrypted = [keys.unprotect(packet) for packet in at_caller]
    heard_by_caller = [p for p in decrypted if p is not None and p[12:] == FROM_DEVICE]
    print(f"caller->device {len(heard_by_device)}/25 (plain), device->caller "
          f"{len(heard_by_caller)}/25 (SRTP)")
    assert len(heard_by_device) >= 20 and len(heard_by_caller) >= 20
    assert result.established


async def test_the_setting_rtp_offers_plain_rtp_to_a_secure_domains_device(harness, app):
    for node in harness.twin.nodes.values():
        node.apply_fidelity(node.fidelity.with_overrides({"dial_secure_media": "rtp"}))
    await _plain_caller_dials_vault(harness, app)
    device_rtp = _udp()
    device = await _device(harness, "vault.sip.twilio.com", device_rtp, None)
    try:
        result = await harness.call("us1", "sip:1@acme.sip.us1.twilio.com", hold=1.0)
    finally:
        await device.close()
        device_rtp.close()
    assert result.established and device.incoming
    (audio,) = parse_sdp(device.incoming[0].invite.body).media
    assert audio.proto == "RTP/AVP" and not audio.attribute_values("crypto")
