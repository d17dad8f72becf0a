"""Acceptance (issue 17): a pjsua2 phone registered as alice answers
``<Dial><Sip>sip:alice@{domain}</Sip></Dial>`` and audio flows both ways.

The caller (the suite's own UA, plain RTP) sends a 440 Hz tone, the phone a 1 kHz tone; each
side must hear the other's tone, and pjsua2's own RTP counters must show packets both ways.
Twice: alice on a plain domain, and alice with SRTP mandatory on a secure domain, where the
twin's leg is SDES-SRTP (pjsua2 refuses anything else) and the bridge decrypts pjsua2's SRTP
for the caller and protects the caller's RTP for pjsua2.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import socket
import struct
import sys
import wave
from array import array
from pathlib import Path

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.sip.sdp import make_offer, parse_sdp
from siptwin.ua.client import SipClient
from siptwin.voice.media import PCMU, tone
from tests.support import PASSWORD

PHONE = Path(__file__).parent / "pjsua2_phone.py"


def _ulaw_to_linear(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = ((((byte & 0x0F) << 3) + 0x84) << ((byte & 0x70) >> 4)) - 0x84
    return -magnitude if byte & 0x80 else magnitude


def _power(samples: list[int] | array, frequency: float, rate: int = 8000) -> float:
    """Goertzel: the power of one frequency in the samples."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    return previous * previous + before * before - coefficient * previous * before


def _dominant(samples, candidates=(440.0, 1000.0)) -> float:
    return max(candidates, key=lambda f: _power(samples, f))


async def _until_registered(phone) -> list[bytes]:
    """pjlib prints a banner before its log settings apply: skip to our own line."""
    lines: list[bytes] = []
    while not lines or lines[-1] != b"registered":
        line = await phone.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
    return lines


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "srtp"])
async def test_pjsua2_phone_registered_as_alice_answers_dial_and_audio_flows(harness, app,
                                                                             tmp_path, secure):
    if importlib.util.find_spec("pjsua2") is None:
        pytest.fail("pjsua2 is not installed: pip install -e '.[test]' (pjsua2-python)")
    label = "vault" if secure else "acme"
    domain = f"{label}.sip.twilio.com"
    voice = app.twiml("/voice", f"<Response><Dial><Sip>sip:alice@{domain}</Sip></Dial></Response>")
    if secure:  # the caller calls in on a plain domain; alice waits on the secure one
        await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
        await harness.provision(DomainPlan("vault", voice_url=voice, secure=True,
                                           credentials=[("alice", PASSWORD)],
                                           sip_registration=True,
                                           registration_credentials=[("alice", PASSWORD)]))
    else:
        await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"],
                                           sip_registration=True,
                                           registration_credentials=[("alice", PASSWORD)]))
    phone_env = {**os.environ, "PJSUA2_PHONE_SRTP": "mandatory" if secure else "off"}
    edge_host, edge_port = harness.node_port("us1")
    recording = tmp_path / "alice.wav"
    phone = await asyncio.create_subprocess_exec(
        sys.executable, str(PHONE), edge_host, str(edge_port), "alice", PASSWORD, domain,
        str(recording), "25", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=phone_env)
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
            twin = (answer.connection_of(answer.media[0]).host, answer.media[0].port)
            assert answer.media[0].proto == "RTP/AVP"  # the caller's side stays plain
            prompt = tone(440.0, 3.0)  # the caller's voice: 3 s of 440 Hz
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
    print(f"pjsua2 ({'SRTP' if secure else 'RTP'}): {stats}; caller heard {len(heard)} RTP packets")
    assert result.established and report["calls"] == 1
    assert stats["rx_packets"] >= 100 and stats["tx_packets"] >= 100, stats
    # The caller hears alice's 1 kHz tone (after the twin's own silence, if any, stopped).
    samples = [_ulaw_to_linear(b) for packet in heard if len(packet) > 12 and packet[1] & 0x7F == PCMU
               for b in packet[12:]]
    assert len(heard) >= 100
    assert _dominant(samples[-8000:]) == 1000.0
    # Alice hears the caller's 440 Hz tone (with SRTP: protected by the bridge, decrypted by
    # pjsua2).
    with wave.open(str(recording)) as recorded:
        frames = recorded.readframes(recorded.getnframes())
        rate = recorded.getframerate()
    linear = array("h", frames)
    powers = {f: _power(linear, f, rate) for f in (440.0, 1000.0)}
    assert len(linear) > rate and powers[440.0] > 10 * powers[1000.0], powers
