"""RTP for answered calls: what the caller hears and the digits it sends (spec §4.5).

Bounded and simple on purpose: one G.711 stream per call from the region's address to the
caller's ``c=``/``m=`` address, 20 ms packets (160 samples) with a random SSRC, consecutive
sequence numbers and timestamps, the marker bit on the first packet of each prompt. Incoming
packets are counted; RFC 4733 telephone-events become digits for ``<Gather>``.

Sound sources: a local WAV file (``file://`` URL or path), speech from ``espeak-ng`` when it is
installed, otherwise a tone whose length follows the text, and a tone for any URL the twin
cannot play offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import os
import secrets
import shutil
import socket
import struct
import wave
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..sip.sdp import (
    CryptoAttribute,
    MediaDescription,
    SessionDescription,
    choose_crypto,
    parse_sdp,
)

if TYPE_CHECKING:
    from .srtp import SrtpContext

log = logging.getLogger("siptwin.voice.media")

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
MAX_PROMPT_SECONDS = 60.0  # one Say/Play iteration never streams longer than this
EVENT_DIGITS = "0123456789*#ABCD"
PCMU, PCMA = 0, 8


# --------------------------------------------------------------------------- G.711
_ULAW_SEGMENTS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEGMENTS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    return next((i for i, end in enumerate(ends) if value <= end), len(ends))


def _linear_to_ulaw(sample: int) -> int:
    """ITU-T G.711 mu-law, as the reference implementation (Sun's g711.c) computes it."""
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, 8159) + 0x21
    segment = _segment(value, _ULAW_SEGMENTS)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _linear_to_alaw(sample: int) -> int:
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask, value = 0x55, -value - 1
    segment = _segment(value, _ALAW_SEGMENTS)
    if segment >= 8:
        return 0x7F ^ mask
    low = (value >> 1) if segment < 2 else (value >> segment)
    return ((segment << 4) | (low & 0x0F)) ^ mask


_TABLES: dict[int, bytes] = {}


def _table(payload_type: int) -> bytes:
    """Encoding of every 16-bit sample (index = sample + 32768), built once per law."""
    if payload_type not in _TABLES:
        encode = _linear_to_alaw if payload_type == PCMA else _linear_to_ulaw
        _TABLES[payload_type] = bytes(encode(s) for s in range(-32768, 32768))
    return _TABLES[payload_type]


def encode_g711(samples: array, payload_type: int) -> bytes:
    table = _table(payload_type)
    return bytes(table[s + 32768] for s in samples)


# --------------------------------------------------------------------------- sources
def tone(frequency: float, seconds: float, amplitude: int = 8000) -> array:
    count = int(max(0.0, min(seconds, MAX_PROMPT_SECONDS)) * SAMPLE_RATE)
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return array("h", (int(amplitude * math.sin(step * i)) for i in range(count)))


def read_wav(data: bytes) -> array:
    """Mono 16-bit samples at 8 kHz from a PCM WAV of any rate/width/channels."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        frames = wav.readframes(min(wav.getnframes(), int(rate * MAX_PROMPT_SECONDS)))
    if width == 1:
        raw = array("h", ((b - 128) << 8 for b in frames))
    elif width == 2:
        raw = array("h")
        raw.frombytes(frames[: len(frames) // 2 * 2])
    else:  # 24/32-bit: keep the two most significant bytes
        raw = array("h", (int.from_bytes(frames[i + width - 2:i + width], "little", signed=True)
                          for i in range(0, len(frames) - width + 1, width)))
    mono = raw if channels == 1 else array("h", raw[::channels])
    if rate == SAMPLE_RATE or not mono:
        return mono
    ratio = rate / SAMPLE_RATE
    return array("h", (mono[min(int(i * ratio), len(mono) - 1)]
                       for i in range(int(len(mono) / ratio))))


def speech_seconds(text: str) -> float:
    """About fifteen characters a second, like a text-to-speech voice, at least half a second."""
    return min(max(0.5, len(text) / 15.0), MAX_PROMPT_SECONDS)


async def speak(text: str, language: str = "en") -> array:
    engine = shutil.which("espeak-ng")
    if engine is not None and text:
        voice = (language or "en").split("-")[0].lower()
        proc = await asyncio.create_subprocess_exec(
            engine, "-v", voice, "--stdout", text, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
            if proc.returncode == 0 and out:
                return read_wav(out)
        except (TimeoutError, wave.Error, EOFError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    return tone(440.0, speech_seconds(text))


def audio_for_url(url: str) -> array:
    """A local WAV when the URL names one, otherwise a two-second 1 kHz tone."""
    parts = urlsplit(url)
    path = unquote(parts.path) if parts.scheme == "file" else (url if not parts.scheme else "")
    if path and os.path.isfile(path):
        try:
            with open(path, "rb") as handle:
                return read_wav(handle.read())
        except (OSError, wave.Error, EOFError) as err:
            log.info("cannot play %s (%s); playing a tone", path, err)
    return tone(1000.0, 2.0)


# --------------------------------------------------------------------------- RTP
@dataclass(frozen=True)
class MediaPlan:
    """Where to send and what to send, read from the offer and our answer."""

    remote_host: str
    remote_port: int
    payload_type: int  # PCMU (0) or PCMA (8) as answered
    event_payload_type: int | None


def plan_media(offer_sdp: bytes | SessionDescription | None,
               answer_sdp: bytes | SessionDescription | None) -> MediaPlan | None:
    """None when there is nothing to send to (late offer, rejected stream, bad SDP).

    Either side may come already parsed (the INVITE's cached ``sdp`` view, our answer)."""
    if not offer_sdp or not answer_sdp:
        return None
    try:
        offer = offer_sdp if isinstance(offer_sdp, SessionDescription) else parse_sdp(offer_sdp)
        answer = answer_sdp if isinstance(answer_sdp, SessionDescription) else parse_sdp(answer_sdp)
    except ValueError:
        return None
    for index, media in enumerate(answer.media):
        if media.port == 0 or index >= len(offer.media):
            continue
        return _plan(offer, offer.media[index], media)
    return None


def plan_late_offer(answer: SessionDescription) -> MediaPlan | None:
    """Where to send for a late-offer call: the caller's SDP answer (in its ACK) names the
    address, the port and, among the codecs we offered, the one to use."""
    for media_line in answer.media:
        if media_line.media != "audio" or media_line.port == 0:
            continue
        return _plan(answer, media_line, media_line)
    return None


def late_answer_keys(answer: SessionDescription, our_key: bytes
                     ) -> tuple[CryptoAttribute, CryptoAttribute] | None:
    """The SDES pair of a late-offer call: the caller's answer picks the one line we offered
    (tag 1) and carries its own key."""
    for media_line in answer.media:
        if media_line.media != "audio" or media_line.port == 0:
            continue
        theirs = choose_crypto(media_line)
        if isinstance(theirs, str) or theirs.tag != 1:
            return None
        return theirs, CryptoAttribute(1, theirs.suite, our_key)
    return None


def _plan(remote: SessionDescription, remote_media: MediaDescription,
          agreed: MediaDescription) -> MediaPlan | None:
    """Send to ``remote_media``'s address and port in the first G.711 codec of ``agreed``
    (the answered media line), with its telephone-event payload type if any."""
    connection = remote.connection_of(remote_media)
    codecs = agreed.codecs()
    audio = next((c for c in codecs if c.is_("PCMU") or c.is_("PCMA")), None)
    if connection is None or audio is None or remote_media.port == 0:
        return None
    event = next((c for c in codecs if c.is_("telephone-event")), None)
    return MediaPlan(connection.host, remote_media.port, PCMA if audio.is_("PCMA") else PCMU,
                     event.payload_type if event else None)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, stream: MediaStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stream._on_packet(data, addr)


class MediaStream:
    """One call's RTP socket on the region address."""

    def __init__(self, local_host: str, on_digit: Callable[[str], None] | None = None) -> None:
        self.local_host = local_host
        self.on_digit = on_digit
        self.plan: MediaPlan | None = None
        # SDES-SRTP keys of a secure call (voice.srtp.SrtpContext); None sends plain RTP.
        self.srtp: SrtpContext | None = None
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.packets_sent = 0
        self.packets_received = 0
        self.digits_received: list[str] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._last_event_timestamp: int | None = None
        self._send_lock = asyncio.Lock()

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        # The region address is numeric: bind directly rather than through the resolver.
        family = socket.AF_INET6 if ":" in self.local_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.local_host, 0))
        except OSError:
            sock.close()
            raise
        transport, _ = await loop.create_datagram_endpoint(lambda: _Receiver(self), sock=sock)
        self._transport = transport
        return transport.get_extra_info("sockname")[1]

    @property
    def port(self) -> int | None:
        return self._transport.get_extra_info("sockname")[1] if self._transport else None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ------------------------------------------------------------------ sending
    async def play(self, samples: array, stop: asyncio.Event | None = None) -> int:
        """Stream ``samples`` in real time; returns the packets sent. Stops early on ``stop``."""
        if self.plan is None or self._transport is None or not samples:
            # Nothing to send to: still take the prompt's time, as the caller would hear it.
            await _sleep_unless(len(samples) / SAMPLE_RATE, stop)
            return 0
        async with self._send_lock:
            return await self._stream(samples, stop)

    async def _stream(self, samples: array, stop: asyncio.Event | None) -> int:
        assert self.plan is not None
        loop = asyncio.get_running_loop()
        payload = encode_g711(samples, self.plan.payload_type)
        destination = (self.plan.remote_host, self.plan.remote_port)
        start = loop.time()
        sent = 0
        for frame, offset in enumerate(range(0, len(payload), FRAME_SAMPLES)):
            if stop is not None and stop.is_set():
                break
            if self._transport is None:
                break
            chunk = payload[offset:offset + FRAME_SAMPLES].ljust(
                FRAME_SAMPLES, b"\xff" if self.plan.payload_type == PCMU else b"\xd5")
            marker = 0x80 if frame == 0 else 0
            header = struct.pack("!BBHII", 0x80, marker | self.plan.payload_type,
                                 self.sequence, self.timestamp, self.ssrc)
            self._send(header + chunk, destination)
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
            sent += 1
            self.packets_sent += 1
            delay = start + (frame + 1) * FRAME_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return sent

    async def send_digits(self, digits: str, stop: asyncio.Event | None = None) -> None:
        """``<Play digits="…">``: RFC 4733 events, ``w`` waits half a second."""
        for key in digits:
            if stop is not None and stop.is_set():
                return
            if key.lower() == "w" or key.upper() not in EVENT_DIGITS:
                await _sleep_unless(0.5, stop)
                continue
            plan = self.plan
            if plan is None or plan.event_payload_type is None or self._transport is None:
                await _sleep_unless(0.1, stop)
                continue
            async with self._send_lock:
                packets = telephone_event_packets(key, plan.event_payload_type, self.sequence,
                                                  self.timestamp, self.ssrc)
                for packet in packets:
                    if self._transport is None:
                        return
                    self._send(packet, (plan.remote_host, plan.remote_port))
                    self.packets_sent += 1
                    await asyncio.sleep(FRAME_SECONDS)
                self.sequence = (self.sequence + len(packets)) & 0xFFFF
                self.timestamp = (self.timestamp + 800 + FRAME_SAMPLES) & 0xFFFFFFFF

    def _send(self, packet: bytes, destination: tuple[str, int]) -> None:
        if self._transport is None:
            return
        if self.srtp is not None:
            packet = self.srtp.protect(packet)
        self._transport.sendto(packet, destination)

    # ------------------------------------------------------------------ receiving
    def _on_packet(self, data: bytes, source: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect(data)
            if clear is None:
                return
            data = clear
        self.packets_received += 1
        payload_type = data[1] & 0x7F
        if self.plan is None or payload_type != self.plan.event_payload_type:
            return
        count = data[0] & 0x0F
        offset = 12 + 4 * count
        if data[0] & 0x10 and len(data) >= offset + 4:  # header extension
            offset += 4 + 4 * struct.unpack("!H", data[offset + 2:offset + 4])[0]
        if len(data) < offset + 4:
            return
        timestamp = struct.unpack("!I", data[4:8])[0]
        # RFC 4733: every packet of one event carries the event's start timestamp; the end
        # packet is sent three times. One digit per timestamp.
        if timestamp == self._last_event_timestamp:
            return
        self._last_event_timestamp = timestamp
        event = data[offset]
        if event < len(EVENT_DIGITS):
            digit = EVENT_DIGITS[event]
            self.digits_received.append(digit)
            if self.on_digit is not None:
                self.on_digit(digit)


async def _sleep_unless(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def telephone_event_packets(digit: str, payload_type: int, sequence: int, timestamp: int,
                            ssrc: int, duration_samples: int = 800) -> list[bytes]:
    """The packets an RFC 4733 sender emits for one digit (start, updates, three end packets).

    Used by the tests (and scenarios) to press keys over RTP.
    """
    event = EVENT_DIGITS.index(digit.upper())
    packets = []
    steps = list(range(FRAME_SAMPLES, duration_samples + 1, FRAME_SAMPLES))
    for index, duration in enumerate(steps):
        end = index == len(steps) - 1
        for _ in range(3 if end else 1):
            header = struct.pack("!BBHII", 0x80, (0x80 if index == 0 else 0) | payload_type,
                                 sequence & 0xFFFF, timestamp, ssrc)
            body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            packets.append(header + body)
            sequence += 1
    return packets
