"""A pjsua2 phone with SRTP mandatory, registered as alice on a secure domain, answers
``<Dial><Sip>sip:alice@vault.sip.twilio.com</Sip></Dial>`` from a plain caller: the twin's leg
is SDES-SRTP (pjsua2 refuses anything else), and each side hears the other's tone - the
bridge decrypts pjsua2's SRTP for the caller and protects the caller's RTP for pjsua2."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import struct
import sys
import wave
from array import array

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.sip.sdp import make_offer, parse_sdp
from siptwin.ua.client import SipClient
from siptwin.voice.media import PCMU, tone
from tests.interop.test_pjsua2_dial import (
    PHONE,
    _dominant,
    _power,
    _ulaw_to_linear,
    _until_registered,
)
from tests.support import PASSWORD

DOMAIN = "vault.sip.twilio.com"


async def test_pjsua2_with_mandatory_srtp_answers_dial_from_a_plain_caller(harness, app, tmp_path):
    if importlib.util.find_spec("pjsua2") is None:
        pytest.fail("pjsua2 is not installed: pip install -e '.[test]' (pjsua2-python)")
    voice = app.twiml("/voice", f"<Response><Dial><Sip>sip:alice@{DOMAIN}</Sip></Dial></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    await harness.provision(DomainPlan("vault", voice_url=voice, secure=True,
                                       credentials=[("alice", PASSWORD)], sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    edge_host, edge_port = harness.node_port("us1")
    recording = tmp_path / "alice.wav"
    phone = await asyncio.create_subprocess_exec(
        sys.executable, str(PHONE), edge_host, str(edge_port), "alice", PASSWORD, DOMAIN,
        str(recording), "25", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PJSUA2_PHONE_SRTP": "mandatory"})
    try:
        lines = await asyncio.wait_for(_until_registered(phone), 10)
        assert lines[-1] == b"registered", lines
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        caller = SipClient("127.0.0.1", "udp")
        await caller.start()
        loop = asyncio.get_running_loop()
        heard: list[bytes] = []
        try:
            call = asyncio.ensure_future(caller.invite(
                edge_host, edge_port, "sip:1@acme.sip.us1.twilio.com", hold=4.0,
                sdp=make_offer("127.0.0.1", media.getsockname()[1], 9, codecs=("PCMU",))))
            await asyncio.wait_for(caller.answered.wait(), 10)
            answer = parse_sdp(caller.last.final.body)
            assert answer.media[0].proto == "RTP/AVP"  # the caller's side stays plain
            twin = (answer.connection_of(answer.media[0]).host, answer.media[0].port)
            prompt = tone(440.0, 3.0)
            payload = b"".join(prompt.frame(i, PCMU) for i in range(prompt.frame_count))

            async def listen() -> None:
                while not call.done():
                    try:
                        heard.append(await asyncio.wait_for(loop.sock_recv(media, 2048), 0.5))
                    except TimeoutError:
                        continue

            listener = asyncio.ensure_future(listen())
            for index, offset in enumerate(range(0, len(payload), 160)):
                header = struct.pack("!BBHII", 0x80, PCMU, index, index * 160, 0x5EED)
                await loop.sock_sendto(media, header + payload[offset:offset + 160], twin)
                await asyncio.sleep(0.02)
            result = await asyncio.wait_for(call, 20)
            listener.cancel()
        finally:
            await caller.close()
            media.close()
        out, _ = await asyncio.wait_for(phone.communicate(), 30)
        print(out.decode(errors="replace")[-3000:])
    finally:
        if phone.returncode is None:
            phone.kill()
            await phone.wait()
    report = json.loads(out.decode().strip().splitlines()[-1])
    stats = report["stats"]
    print(f"pjsua2 (SRTP): {stats}; caller heard {len(heard)} RTP packets")
    assert result.established and report["calls"] == 1
    assert stats["rx_packets"] >= 100 and stats["tx_packets"] >= 100, stats
    samples = [_ulaw_to_linear(b) for packet in heard
               if len(packet) > 12 and packet[1] & 0x7F == PCMU for b in packet[12:]]
    assert len(heard) >= 100
    assert _dominant(samples[-8000:]) == 1000.0  # pjsua2's tone, decrypted by the bridge
    with wave.open(str(recording)) as recorded:
        frames = recorded.readframes(recorded.getnframes())
        rate = recorded.getframerate()
    linear = array("h", frames)
    powers = {f: _power(linear, f, rate) for f in (440.0, 1000.0)}
    # pjsua2 decrypted the caller's tone, which the bridge protected with the leg's key.
    assert len(linear) > rate and powers[440.0] > 10 * powers[1000.0], powers
