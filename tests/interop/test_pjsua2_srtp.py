"""Acceptance (issue 17): a real pjsua2 process calls a ``secure=true`` domain over TLS with
mandatory SDES-SRTP, hears the twin's ``<Play>``, is heard by the twin, survives hold and
resume by re-INVITE, and ``<Gather>`` reports the RFC 4733 digits it sends after the resume.

What proves what:
- pjsua2 decrypts the twin's audio: its recording holds the two tones the twin played from
  the test's WAV files (700 Hz before the hold, 1500 Hz after the digits), not silence.
- the wire is SRTP both ways: every RTP packet captured on ``lo`` authenticates under the
  keys of the SDP exchanges (plain RTP would not), and the ciphertext is not the tone.
- the twin decrypts pjsua2's audio: the captured packets from pjsua2 decrypt to its 440 Hz
  tone under pjsua2's key, and the twin's call record counts them received under that same
  key with none rejected.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import struct
import sys
import threading

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.sip.sdp import CryptoAttribute, parse_crypto, parse_sdp
from siptwin.voice.srtp import SrtpContext
from tests.support import PASSWORD, REPO
from tests.support.audio import power, read_wav, tones_heard, write_tone

UAC = REPO / "harness" / "pbx" / "pjsua2" / "uac.py"
SUITE_80, SUITE_32 = "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"
PHONE_HZ, FIRST_HZ, SECOND_HZ = 440.0, 700.0, 1500.0
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


def _ulaw(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = ((((byte & 0x0F) << 3) + 0x84) << ((byte & 0x70) >> 4)) - 0x84
    return -magnitude if byte & 0x80 else magnitude


def _alaw(byte: int) -> int:
    byte ^= 0x55
    exponent, mantissa = (byte & 0x70) >> 4, byte & 0x0F
    magnitude = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if byte & 0x80 else -magnitude


DECODE = {0: [_ulaw(b) for b in range(256)], 8: [_alaw(b) for b in range(256)]}


def _loudest(samples, rate: int, candidates) -> float:
    return max(candidates, key=lambda f: power(samples, f, rate))


class LoopbackCapture:
    """UDP datagrams on ``lo`` (AF_PACKET: root), read by a thread: (source, destination,
    payload) with addresses as (host, port). Each datagram is kept once (the outgoing copy of
    a loopback packet is skipped); at most ``limit`` are kept."""

    def __init__(self, limit: int = 50_000) -> None:
        self.packets: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        self.limit = limit
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.bind(("lo", ETH_P_IP))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            if address[2] == PACKET_OUTGOING or len(frame) < 14 + 28:
                continue
            ip = frame[14:]
            if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
                continue
            header = (ip[0] & 0x0F) * 4
            source_port, destination_port, length = struct.unpack("!HHH", ip[header:header + 6])
            payload = ip[header + 8:header + length]
            if len(self.packets) < self.limit:
                self.packets.append(((socket.inet_ntoa(ip[12:16]), source_port),
                                     (socket.inet_ntoa(ip[16:20]), destination_port), payload))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def between(self, source: tuple[str, int], destination: tuple[str, int]) -> list[bytes]:
        return [p for s, d, p in self.packets if s == source and d == destination]


def _exchanges(call) -> list[tuple[bytes, bytes]]:
    """(offer, answer) SDP bodies of the INVITE and every re-INVITE, from the twin's trace."""
    pairs, offer = [], None
    for entry in call.trace:
        data = entry.data
        body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
        if entry.direction == "in" and data.startswith(b"INVITE") and b"m=audio" in body:
            offer = body
        elif (entry.direction == "out" and data.startswith(b"SIP/2.0 200") and b"m=audio" in body
              and offer is not None):
            pairs.append((offer, body))
            offer = None
    return pairs


def _media_addresses(offer: bytes, answer: bytes) -> tuple[tuple[str, int], tuple[str, int]]:
    phone, twin = parse_sdp(offer), parse_sdp(answer)
    return ((phone.connection_of(phone.media[0]).host, phone.media[0].port),
            (twin.connection_of(twin.media[0]).host, twin.media[0].port))


def _keys(offer: bytes, answer: bytes) -> tuple[CryptoAttribute, CryptoAttribute]:
    """(pjsua2's key, the twin's key): the offered line whose tag the answer took."""
    (twins,) = [parse_crypto(v) for v in parse_sdp(answer).media[0].attribute_values("crypto")]
    phones = [parse_crypto(v) for v in parse_sdp(offer).media[0].attribute_values("crypto")]
    (phone,) = [c for c in phones if c.tag == twins.tag]
    return phone, twins


def _decrypt(packets: list[bytes], keys: list[CryptoAttribute]) -> tuple[list[bytes], int]:
    """Each packet unprotected under the first of ``keys`` that authenticates it (one
    context per key, packets in order); the clear packets and how many none authenticated."""
    contexts = [SrtpContext(key, key) for key in dict.fromkeys(keys)]
    clear, failed = [], 0
    for packet in packets:
        for context in contexts:
            plain = context.unprotect(packet)
            if plain is not None:
                clear.append(plain)
                break
        else:
            failed += 1
    return clear, failed


def _audio_samples(packets: list[bytes]) -> list[int]:
    samples: list[int] = []
    for packet in packets:
        payload_type = packet[1] & 0x7F
        if payload_type in DECODE and len(packet) >= 12 + 160:
            table = DECODE[payload_type]
            samples.extend(table[b] for b in packet[12:12 + 160])
    return samples


# pjsua2's own offer lists AES_256_CM_HMAC_SHA1_80 and _32 first (the twin must pass over
# them to tag 3, spec §4.5); the second run offers only the 32-bit tag suite.
@pytest.mark.parametrize("offered, suite", [((), SUITE_80), ((SUITE_32,), SUITE_32)],
                         ids=["pjsua2-default-offer", "aes128-sha1-32-only"])
async def test_pjsua2_srtp_over_tls_hears_and_is_heard_and_survives_hold_and_resume(
        harness, app, tmp_path, offered, suite):
    if importlib.util.find_spec("pjsua2") is None:
        pytest.fail("pjsua2 is not installed: pip install -e '.[test]' (pjsua2-python)")
    if os.geteuid() != 0:
        pytest.skip("capturing the SRTP packets on lo needs root (CI runs as root)")
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    write_tone(first, FIRST_HZ, 2.0)
    write_tone(second, SECOND_HZ, 1.5)
    app.twiml("/digits", f"<Response><Play>{second.as_uri()}</Play><Hangup/></Response>")
    voice = app.twiml("/voice", f"<Response><Play>{first.as_uri()}</Play>"
                      '<Gather action="/digits" numDigits="3" timeout="15">'
                      '<Pause length="15"/></Gather><Say>no digits</Say></Response>')
    await harness.provision(DomainPlan("vault", credentials=[("alice", PASSWORD)], secure=True,
                                       voice_url=voice))
    host, port = harness.node_port("us1", "tls")
    heard = tmp_path / "heard.wav"
    capture = LoopbackCapture()
    try:
        phone = await asyncio.create_subprocess_exec(
            sys.executable, str(UAC), "--proxy", f"{host}:{port}", "--transport", "tls",
            "--ca", str(harness.twin.certificate), "--srtp", "mandatory",
            "--host", "vault.sip.twilio.com", "--user", "alice", "--password", PASSWORD,
            "--tone", str(PHONE_HZ), "--record", str(heard), "--hold-at", "3", "--hold-for", "2",
            "--dtmf", "123", "--seconds", "10", "--report",
            *(arg for name in offered for arg in ("--crypto", name)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(phone.communicate(), 60)
        finally:
            if phone.returncode is None:
                phone.kill()
                await phone.wait()
    finally:
        capture.stop()
    text = out.decode(errors="replace")
    print(text[-3000:])
    (line,) = [ln for ln in text.splitlines() if ln.startswith("report ")]
    report = json.loads(line[len("report "):])
    assert phone.returncode == 0, text[-3000:]

    # pjsua2's side: SRTP with the suite, hold then resume answered, packets both ways.
    assert report["srtp"] == suite, report
    assert report["reinvites"] == [200, 200], report
    states = report["media_states"]
    assert "local-hold" in states and states[-1] == "active", states
    # pjsua2 makes a new stream at the resume: these count from there to the twin's BYE
    # (the second tone, 1.5 s, and the digits).
    assert report["stats"]["rx_packets"] >= 75 and report["stats"]["tx_packets"] >= 75, report

    # <Gather> after the resume heard the digits; the twin then played the second tone and
    # hung up.
    (hit,) = await app.wait("/digits", timeout=5)
    assert hit.values["Digits"] == "123"
    calls = [c for c in harness.twin.calls.all() if c.username == "alice"]
    assert len(calls) == 1
    call = calls[0]
    assert call.transport == "tls" and call.final_status == 200 and call.status == "completed"
    assert call.media["digits_received"] == "123"
    srtp = call.media["srtp"]
    assert srtp["suite"] == suite and srtp["rejected"] == 0, call.media
    # pjsua2's SRTCP reports authenticated too
    assert call.media["rtcp_received"] >= 1 and srtp["rejected_rtcp"] == 0, call.media

    # The SDP: hold offered sendonly (answered recvonly), resume sendrecv, one key per side.
    exchanges = _exchanges(call)
    assert len(exchanges) == 3, [o[:80] for o, _ in exchanges]
    directions = [(parse_sdp(o).media[0].direction, parse_sdp(a).media[0].direction)
                  for o, a in exchanges]
    assert directions == [("sendrecv", "sendrecv"), ("sendonly", "recvonly"),
                          ("sendrecv", "sendrecv")], directions
    assert all(parse_sdp(a).media[0].proto == "RTP/SAVP" for _, a in exchanges)
    keys = [_keys(o, a) for o, a in exchanges]
    assert all(k.suite == suite for pair in keys for k in pair), keys
    addresses = {_media_addresses(o, a) for o, a in exchanges}
    assert len(addresses) == 1, addresses  # the same ports throughout
    ((phone_media, twin_media),) = addresses

    # pjsua2 heard (decrypted) both of the twin's tones, in order: not silence, not its own.
    samples, rate = read_wav(heard)
    assert len(samples) > 6 * rate
    tones = tones_heard(samples, rate, (PHONE_HZ, FIRST_HZ, SECOND_HZ))
    assert tones.count(FIRST_HZ) >= 3 and tones.count(SECOND_HZ) >= 2, tones
    assert PHONE_HZ not in tones and tones.index(SECOND_HZ) > tones.index(FIRST_HZ), tones

    # On the wire: SRTP both ways. Every packet authenticates under the exchange's keys.
    from_phone = capture.between(phone_media, twin_media)
    from_twin = capture.between(twin_media, phone_media)
    assert len(from_phone) >= 150 and len(from_twin) >= 150, (len(from_phone), len(from_twin))
    phone_clear, phone_failed = _decrypt(from_phone, [p for p, _ in keys])
    twin_clear, twin_failed = _decrypt(from_twin, [t for _, t in keys])
    assert phone_failed == 0 and twin_failed == 0, (phone_failed, twin_failed)
    # The ciphertext is not the audio: read as plain G.711, no tone stands out.
    tag = 10 if suite == SUITE_80 else 4  # the authentication tag ends each packet
    assert all(len(p) == 12 + 160 + tag for p in from_twin), {len(p) for p in from_twin}
    raw = _audio_samples([p[:-tag] for p in from_phone])
    decrypted = _audio_samples(phone_clear)
    assert power(decrypted, PHONE_HZ, 8000) > 100 * power(raw, PHONE_HZ, 8000)
    # pjsua2's 440 Hz reached the twin encrypted; the twin accepted every such packet under
    # pjsua2's key (none rejected), so it decrypted this same audio.
    assert _loudest(decrypted[-8000:], 8000, (PHONE_HZ, FIRST_HZ, SECOND_HZ)) == PHONE_HZ
    audio_from_phone = sum(1 for p in phone_clear if p[1] & 0x7F in DECODE)
    assert call.media["packets_received"] >= audio_from_phone >= 150, (call.media,
                                                                       audio_from_phone)
    twin_samples = _audio_samples(twin_clear)
    assert power(twin_samples, FIRST_HZ, 8000) > 100 * power(twin_samples, PHONE_HZ, 8000)
