"""RTP for answered calls: what the caller hears and the digits it sends (spec §4.5).

Bounded and simple on purpose: one G.711 stream per call from the region's address to the
caller's ``c=``/``m=`` address, 20 ms packets (160 samples) with a random SSRC, consecutive
sequence numbers and timestamps, the marker bit on the first packet of each prompt. Like a
real endpoint the stream never goes quiet: between prompts (``<Pause>``, waiting for digits)
it sends G.711 silence every 20 ms, and RTCP sender reports every five seconds from the next
port up (RTP port + 1, even/odd pair). While the caller holds the call (our answer
``recvonly``/``inactive``) nothing is sent. RFC 4733 telephone-events become digits for
``<Gather>``.

Symmetric RTP with latching: packets count only when they come from the address the SDP
names (``c=``); the first such packet fixes the source port too, and RTP (digits included)
from any other address or port is ignored and counted in ``packets_ignored``. A re-INVITE
that changes the media re-plans the stream and latches afresh.

The stream is the transport; what it plays is a ``Prompt``: 20 ms frames produced on demand
and kept (``PROMPTS`` holds at most 256 prompts and 16 MB of audio, least recently used out), so
a prompt is synthesised and encoded once for every call that hears it, and only the frames
actually sent are ever computed. Tones share one cycle of frames per frequency and law.

Sound sources: a local WAV file (``file://`` URL or path), speech from ``espeak-ng`` when it is
installed, otherwise a tone whose length follows the text, and a tone for any URL the twin
cannot play offline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import logging
import math
import os
import secrets
import select
import shutil
import socket
import struct
import time
import wave
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..sip.entropy import random_bytes
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
EARLY_PACKETS = 64  # about a second of one caller's RTP, held until the plan is set
MAX_PROMPT_SECONDS = 60.0  # one Say/Play iteration never streams longer than this
EVENT_DIGITS = "0123456789*#ABCD"
PCMU, PCMA = 0, 8
SILENCE = {PCMU: b"\xff" * FRAME_SAMPLES, PCMA: b"\xd5" * FRAME_SAMPLES}
# A silence packet per law, shared by every stream: each tick writes a stream's sequence
# number, timestamp and SSRC into it and sends it (sendto copies it out before returning).
_SILENCE_PACKETS = {payload_type: bytearray(struct.pack("!BBHII", 0x80, payload_type, 0, 0, 0)
                                            + payload)
                    for payload_type, payload in SILENCE.items()}
_SET_SEQUENCE = struct.Struct("!HII").pack_into  # sequence, timestamp, SSRC at offset 2
# The same for a prompt's frames: one buffer, the whole header and the payload written in.
_FRAME_PACKET = bytearray(12 + FRAME_SAMPLES)
_SET_HEADER = struct.Struct("!BBHII").pack_into
RTCP_INTERVAL = 5.0  # RFC 3550 §6.2 minimum
RTP_PORTS = (10000, 60000)  # Twilio's media range (spec §4.5)
NTP_EPOCH_OFFSET = 2208988800


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


# --------------------------------------------------------------------------- prompts
class Prompt:
    """Audio ready to stream: a number of 20 ms frames, each encoded the first time it is sent
    and kept, so a prompt said to many callers is synthesised and encoded once, and a caller
    who hangs up after 100 ms costs five frames, not the whole prompt."""

    frame_count: int = 0

    @property
    def seconds(self) -> float:
        return self.frame_count * FRAME_SECONDS

    def frame(self, index: int, payload_type: int) -> bytes:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.frame_count

    def cost(self) -> int:
        """Bytes this prompt may hold once every frame was sent in both laws."""
        return 0


def _pad(chunk: bytes, payload_type: int) -> bytes:
    return chunk + SILENCE[payload_type][: FRAME_SAMPLES - len(chunk)]


class SampledPrompt(Prompt):
    """Linear samples (a WAV file, synthesised speech) encoded frame by frame on demand."""

    def __init__(self, samples: array) -> None:
        self.samples = samples
        self.frame_count = -(-len(samples) // FRAME_SAMPLES)
        self._frames: dict[int, list[bytes | None]] = {}

    def frame(self, index: int, payload_type: int) -> bytes:
        frames = self._frames.get(payload_type)
        if frames is None:
            frames = self._frames[payload_type] = [None] * self.frame_count
        chunk = frames[index]
        if chunk is None:
            table = _table(payload_type)
            start = index * FRAME_SAMPLES
            chunk = bytes([table[s + 32768] for s in self.samples[start:start + FRAME_SAMPLES]])
            if len(chunk) < FRAME_SAMPLES:
                chunk = _pad(chunk, payload_type)
            frames[index] = chunk
        return chunk

    def cost(self) -> int:
        return len(self.samples) * 4


# A tone repeats every lcm(period, 160) samples: those frames are computed once per
# (frequency, amplitude, law) and shared by every prompt of that tone, whatever its length.
_TONE_CYCLES: dict[tuple[float, int, int], list[bytes | None]] = {}
MAX_TONE_CYCLE_FRAMES = 50


class TonePrompt(Prompt):
    def __init__(self, frequency: float, seconds: float, amplitude: int = 8000) -> None:
        self.frequency, self.amplitude = frequency, amplitude
        self.samples = int(max(0.0, min(seconds, MAX_PROMPT_SECONDS)) * SAMPLE_RATE)
        self.frame_count = -(-self.samples // FRAME_SAMPLES)
        # Samples per period of the wave: the denominator of frequency / SAMPLE_RATE in lowest
        # terms (as_integer_ratio is exact for a float, as Fraction was, without importing
        # fractions and decimal into every serving process).
        numerator, denominator = frequency.as_integer_ratio()
        period = denominator * SAMPLE_RATE // math.gcd(numerator, denominator * SAMPLE_RATE)
        cycle = period * FRAME_SAMPLES // math.gcd(period, FRAME_SAMPLES) // FRAME_SAMPLES
        self._cycle = cycle if cycle <= MAX_TONE_CYCLE_FRAMES else 0

    def _compute(self, index: int, payload_type: int, count: int) -> bytes:
        table = _table(payload_type)
        step = 2 * math.pi * self.frequency / SAMPLE_RATE
        amplitude = self.amplitude
        first = index * FRAME_SAMPLES
        return bytes([table[int(amplitude * math.sin(step * i)) + 32768]
                      for i in range(first, first + count)])

    def frame(self, index: int, payload_type: int) -> bytes:
        remaining = self.samples - index * FRAME_SAMPLES
        if remaining < FRAME_SAMPLES:  # the last, partial frame: not shared
            return _pad(self._compute(index, payload_type, max(0, remaining)), payload_type)
        if not self._cycle:
            return self._compute(index, payload_type, FRAME_SAMPLES)
        key = (self.frequency, self.amplitude, payload_type)
        frames = _TONE_CYCLES.get(key)
        if frames is None:
            frames = _TONE_CYCLES[key] = [None] * self._cycle
        slot = index % self._cycle
        chunk = frames[slot]
        if chunk is None:
            chunk = frames[slot] = self._compute(slot, payload_type, FRAME_SAMPLES)
        return chunk


class PromptCache:
    """Prompts by what produced them ((text, voice, language) or a URL), least recently used
    first out; bounded in entries and in the audio bytes they may hold."""

    def __init__(self, max_entries: int = 256, max_bytes: int = 16 << 20) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._prompts: OrderedDict[tuple[object, ...], Prompt] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[object, ...]) -> Prompt | None:
        prompt = self._prompts.get(key)
        if prompt is not None:
            self._prompts.move_to_end(key)
        return prompt

    def put(self, key: tuple[object, ...], prompt: Prompt) -> Prompt:
        if prompt.cost() > self.max_bytes:
            return prompt  # too large to keep: served, not cached
        old = self._prompts.pop(key, None)
        if old is not None:
            self._bytes -= old.cost()
        self._prompts[key] = prompt
        self._bytes += prompt.cost()
        while len(self._prompts) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._prompts.popitem(last=False)
            self._bytes -= evicted.cost()
        return prompt

    def __len__(self) -> int:
        return len(self._prompts)

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        self._prompts.clear()
        self._bytes = 0


PROMPTS = PromptCache()


# --------------------------------------------------------------------------- sources
def tone(frequency: float, seconds: float, amplitude: int = 8000) -> TonePrompt:
    return TonePrompt(frequency, seconds, amplitude)


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


async def speak(text: str, language: str = "en", voice: str = "") -> Prompt:
    """``<Say>``'s audio, made once per (text, voice, language) while it stays in ``PROMPTS``."""
    engine = _speech_engine() if text else None
    key = ("say", text, voice, language, engine is not None)
    prompt = PROMPTS.get(key)
    if prompt is not None:
        return prompt
    if engine is not None:
        samples = await _espeak(engine, text, language)
        if samples is not None:
            return PROMPTS.put(key, SampledPrompt(samples))
    return PROMPTS.put(key, TonePrompt(440.0, speech_seconds(text)))


_ENGINE_CHECK_SECONDS = 10.0
_engine: tuple[float, str | None] = (-_ENGINE_CHECK_SECONDS, None)


def _speech_engine() -> str | None:
    """espeak-ng's path, looked up at most every ten seconds (a PATH walk per <Say> costs as
    much as the rest of the verb)."""
    global _engine
    now = time.monotonic()
    if now - _engine[0] >= _ENGINE_CHECK_SECONDS:
        _engine = (now, shutil.which("espeak-ng"))
    return _engine[1]


async def _espeak(engine: str, text: str, language: str) -> array | None:
    espeak_voice = (language or "en").split("-")[0].lower()
    proc = await asyncio.create_subprocess_exec(
        engine, "-v", espeak_voice, "--stdout", text, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        if proc.returncode == 0 and out:
            return read_wav(out)
    except (TimeoutError, wave.Error, EOFError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return None


def audio_for_url(url: str) -> Prompt:
    """A local WAV when the URL names one, otherwise a two-second 1 kHz tone. A file is read
    again when its size or modification time changes."""
    parts = urlsplit(url)
    path = unquote(parts.path) if parts.scheme == "file" else (url if not parts.scheme else "")
    if path and os.path.isfile(path):
        try:
            stat = os.stat(path)
            key: tuple[object, ...] = ("play", path, stat.st_mtime_ns, stat.st_size)
            prompt = PROMPTS.get(key)
            if prompt is not None:
                return prompt
            with open(path, "rb") as handle:
                return PROMPTS.put(key, SampledPrompt(read_wav(handle.read())))
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
    sending: bool = True  # False while held: our answer is recvonly or inactive
    receiving: bool = True  # False when the caller said it sends nothing (recvonly/inactive)
    rtcp_port: int | None = None  # a=rtcp, else RTP + 1 (RFC 3550 §11); RTP's with rtcp-mux


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
        # What the plan reads of the answer besides the port: its formats and attributes.
        # Calls answering one shared parsed offer from one answer template share those very
        # tuples (sip.sdp.answer_offer), so their plan is made once (plans are immutable).
        known = _PLANS.get(id(offer))
        if (known is not None and known[0] is offer and known[1] == index
                and known[2] is media.formats and known[3] is media.attributes
                and known[4] is answer.attributes):
            return known[5]
        plan = _plan(offer, offer.media[index], media, answer.direction_of(media))
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        # The entry holds the offer, so its id cannot pass to another object meanwhile.
        _PLANS[id(offer)] = (offer, index, media.formats, media.attributes, answer.attributes,
                             plan)
        return plan
    return None


# The last plan made for each parsed offer (see plan_media), by the offer's id.
_PLANS: dict[int, tuple[SessionDescription, int, tuple[str, ...], tuple[object, ...],
                        tuple[object, ...], MediaPlan | None]] = {}
_PLANS_MAX = 256


def plan_late_offer(answer: SessionDescription) -> MediaPlan | None:
    """Where to send for a late-offer call: the caller's SDP answer (in its ACK) names the
    address, the port and, among the codecs we offered, the one to use."""
    for media_line in answer.media:
        if media_line.media != "audio" or media_line.port == 0:
            continue
        theirs = answer.direction_of(media_line)
        return _plan(answer, media_line, media_line, _OUR_DIRECTION.get(theirs, "sendrecv"))
    return None


_OUR_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
                  "inactive": "inactive"}


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
          agreed: MediaDescription, our_direction: str) -> MediaPlan | None:
    """Send to ``remote_media``'s address and port in the first G.711 codec of ``agreed``
    (the answered media line), with its telephone-event payload type if any; ``our_direction``
    is ours as answered (RFC 3264 §6.1)."""
    connection = remote.connection_of(remote_media)
    codecs = agreed.codecs()
    audio = next((c for c in codecs if c.is_("PCMU") or c.is_("PCMA")), None)
    if connection is None or audio is None or remote_media.port == 0:
        return None
    event = next((c for c in codecs if c.is_("telephone-event")), None)
    # c=0.0.0.0 is RFC 2543 hold: nothing is to be sent there.
    sending = our_direction in ("sendrecv", "sendonly") and connection.host != "0.0.0.0"
    rtcp_port = remote_media.port + 1
    rtcp = remote_media.attribute_values("rtcp")
    if remote_media.attribute_values("rtcp-mux") == ("",):
        rtcp_port = remote_media.port
    elif rtcp and rtcp[0].split(" ")[0].isdigit():
        rtcp_port = int(rtcp[0].split(" ")[0])
    return MediaPlan(connection.host, remote_media.port, PCMA if audio.is_("PCMA") else PCMU,
                     event.payload_type if event else None, sending,
                     our_direction in ("sendrecv", "recvonly"), rtcp_port)


class _DatagramSocket:
    """A UDP socket read straight from the event loop's selector, with the three calls a
    stream makes of it (``sendto``, ``port``, ``close``). An asyncio
    transport and protocol per socket cost each call about as much CPU as its SIP answer; the
    media path needs none of their buffering (a packet that does not fit the socket buffer is
    lost, as on the network)."""

    __slots__ = ("_deliver", "_loop", "_name", "_sock")
    RECEIVE_BATCH = 64  # datagrams read per wake-up at most, so one stream cannot hog the loop

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 deliver: Callable[[bytes, tuple[str, int]], None],
                 name: tuple[str, int] | None = None) -> None:
        self._loop, self._deliver = loop, deliver
        self._sock: socket.socket | None = sock
        self._name = name or sock.getsockname()[:2]  # known when bound to a chosen port
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(self.RECEIVE_BATCH):
            sock = self._sock
            if sock is None:
                return
            try:
                data, source = sock.recvfrom(8192)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # e.g. an ICMP error queued on the socket
                log.debug("media socket %s: %s", self._name, err)
                return
            self._deliver(data, source)

    def sendto(self, data: bytes | bytearray, destination: tuple[str, int]) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(data, destination)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as err:
            log.debug("media socket %s: %s", self._name, err)

    @property
    def port(self) -> int:
        return int(self._name[1])

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    def idle(self) -> None:
        """Kept open for a later call (:class:`MediaPorts`): what arrives is read and dropped."""
        self._deliver = _discard

    def reuse(self, deliver: Callable[[bytes, tuple[str, int]], None], drain: bool = True) -> None:
        """Hand the socket to a new stream, after dropping what is still queued on it
        (``drain`` False: the caller knows nothing is, see :func:`_anything_queued`)."""
        sock = self._sock
        assert sock is not None
        if drain:
            try:
                while True:
                    sock.recvfrom(8192)
            except OSError:  # BlockingIOError once empty; a queued ICMP error ends it too
                pass
        self._deliver = deliver


def _anything_queued(*sockets: _DatagramSocket) -> bool:
    """Whether any of ``sockets`` has a datagram (or an error) waiting: one select for a port
    pair costs less than a failing ``recvfrom`` on each, and most often none waits."""
    descriptors = [s._sock.fileno() for s in sockets if s._sock is not None]
    readable, _, _ = select.select(descriptors, (), (), 0)
    return bool(readable)


def _discard(data: bytes, source: tuple[str, int]) -> None:
    pass


# Sources (address, port, SSRC) whose RTP a reused port pair still ignores: the last few
# calls it served. A peer that goes on sending after its call ended is heard by no later call.
STALE_SOURCES = 4


@dataclass
class _IdlePair:
    released_at: float
    rtp: _DatagramSocket
    rtcp: _DatagramSocket
    stale: frozenset[tuple[str, int, bytes]]


class MediaPorts:
    """Port pairs of ended calls kept bound and reused by new calls of the same address.

    Opening a stream costs two sockets, two binds and two selector registrations, and
    closing it as much again: about a tenth of an answered call's CPU. A pair is reused only
    after ``reuse_after`` seconds idle, oldest first; while idle it stays registered and drops
    whatever arrives; when reused, what is queued on it is dropped first, and the new stream
    ignores RTP from the sources (address, port and SSRC) of the last ``STALE_SOURCES`` calls
    the pair served, so a packet of a previous call never reaches a new one. At most
    ``max_pairs`` pairs are kept (two descriptors each); ``close`` closes them all. Each call
    still has its own ports while it lasts.
    """

    def __init__(self, max_pairs: int = 128, reuse_after: float = 0.1) -> None:
        self.max_pairs = max_pairs
        self.reuse_after = reuse_after
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[str, collections.deque[_IdlePair]] = {}  # by local address
        self._count = 0
        self.reused = 0

    def __len__(self) -> int:
        return self._count

    def take(self, loop: asyncio.AbstractEventLoop, host: str
             ) -> tuple[_DatagramSocket, _DatagramSocket, frozenset[tuple[str, int, bytes]]] | None:
        if loop is not self._loop:  # sockets registered with another (closed) loop
            self.close()
            self._loop = loop
            return None
        idle = self._idle.get(host)
        if not idle or loop.time() - idle[0].released_at < self.reuse_after:
            return None
        pair = idle.popleft()
        self._count -= 1
        self.reused += 1
        return pair.rtp, pair.rtcp, pair.stale

    def give(self, loop: asyncio.AbstractEventLoop, host: str, rtp: _DatagramSocket,
             rtcp: _DatagramSocket, stale: frozenset[tuple[str, int, bytes]]) -> bool:
        """Keep an ended call's pair; False when the pool is full (the caller closes it)."""
        if loop is not self._loop or self._count >= self.max_pairs or loop.is_closed():
            return False
        rtp.idle()
        rtcp.idle()
        self._idle.setdefault(host, collections.deque()).append(
            _IdlePair(loop.time(), rtp, rtcp, stale))
        self._count += 1
        return True

    def close(self) -> None:
        idle, self._idle, self._count = self._idle, {}, 0
        for pairs in idle.values():
            for pair in pairs:
                pair.rtp.close()
                pair.rtcp.close()


def kept_pairs_for_descriptor_limit(most: int = 128) -> int:
    """How many idle port pairs a :class:`MediaPorts` may keep: ``most``, or a 32nd of the
    process's descriptor limit when that is lower (1024 gives 32 pairs, 64 descriptors)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return most
    return max(0, min(most, soft // 32))


class MediaClock:
    """One 20 ms pacing tick for every open stream of an event loop. A task per stream
    sleeping 20 ms at a time costs a future, a timer and a task step per stream per tick;
    one timer walking the streams costs a method call each. The tick runs only while a
    stream is open (and once more after the last one has left, see leave)."""

    _clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock] = (
        weakref.WeakKeyDictionary())
    _last: MediaClock | None = None  # the clock asked for last: nearly always the one wanted

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._streams: dict[MediaStream, None] = {}  # insertion-ordered set
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> MediaClock:
        # (the last one first: a WeakKeyDictionary look-up is Python code, a weak reference
        # made and a method called, for every stream opened; a clock holds its loop anyway)
        clock = cls._last
        if clock is not None and clock._loop is loop:
            return clock
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls(loop)
        cls._last = clock
        return clock

    def join(self, stream: MediaStream) -> None:
        self._streams[stream] = None
        if self._timer is None:
            self._due = self._loop.time() + FRAME_SECONDS
            self._timer = self._loop.call_at(self._due, self._tick)

    def leave(self, stream: MediaStream) -> None:
        # The last stream to leave lets the timer run out: its next tick stops it unless a
        # stream has joined meanwhile. Calls that follow each other one at a time would
        # otherwise each start the timer and cancel it (the cancelled timers left in the
        # loop's heap until they would have been due).
        self._streams.pop(stream, None)

    def _tick(self) -> None:
        loop = self._loop
        now = loop.time()
        for stream in list(self._streams):
            if stream in self._streams:  # a callback may have closed it meanwhile
                try:
                    stream._tick(now)
                except Exception:
                    log.exception("media stream tick failed; the stream stops sending")
                    self._streams.pop(stream, None)
                    stream._clock = None
                    stream._end_playing()
        if not self._streams:
            self._timer = None
            return
        due = self._due + FRAME_SECONDS
        now = loop.time()
        if now - due > 0.2:  # the loop was busy: resume the pace rather than burst
            due = now
        self._due = due
        self._timer = loop.call_at(due, self._tick)


@dataclass(slots=True, eq=False)
class _Playing:
    """A prompt being streamed: the next frame to send and the future its player awaits."""

    prompt: Prompt
    payload_type: int
    stop: asyncio.Event | None
    done: asyncio.Future[int]
    frame: int = 0
    sent: int = 0


class MediaStream:
    """One call's RTP and RTCP sockets on the region address."""

    def __init__(self, local_host: str, on_digit: Callable[[str], None] | None = None,
                 *, inactivity_timeout: float = 0.0,
                 on_inactive: Callable[[], None] | None = None,
                 peer_host: str | None = None, ports: MediaPorts | None = None) -> None:
        self.local_host = local_host
        self._ports = ports  # where the sockets come from and go back to; None: fresh ones
        # (address, port, SSRC) of earlier calls on reused ports, ignored; see MediaPorts.
        self._stale: frozenset[tuple[str, int, bytes]] = frozenset()
        self._heard_ssrc: bytes | None = None  # of the latched source's last packet
        # The address the call's signalling came from. Media is taken from it as well as from
        # the SDP's address: a phone whose c= names another interface (or a PBX behind NAT
        # that advertises a private address) sends from here, and symmetric RTP answers it.
        self.peer_host = peer_host
        self.on_digit = on_digit
        # No RTP from the caller for this long (0: never) while it should be sending
        # calls ``on_inactive`` once (Twilio's 32014).
        self.inactivity_timeout = inactivity_timeout
        self.on_inactive = on_inactive
        self._plan: MediaPlan | None = None
        self._latched: tuple[str, int] | None = None
        # Where RTP goes (see _destination), kept up to date as the plan and the latch change.
        self._to: tuple[str, int] | None = None
        # Packets that arrive between our 200 (the port is in it) and the media plan and keys
        # being in place: a phone may send digits at once. Kept, bounded, until release_early().
        self._early: list[tuple[bytes, tuple[str, int]]] | None = []
        self.packets_ignored = 0  # from an address (or port) the stream is not latched to
        self.octets_sent = 0
        self.rtcp_sent = 0
        self.rtcp_received = 0
        self._rtcp: _DatagramSocket | None = None
        self._clock: MediaClock | None = None
        self._report_at = 0.0
        self._heard_at = 0.0
        # SDES-SRTP keys of a secure call (voice.srtp.SrtpContext); None sends plain RTP.
        self.srtp: SrtpContext | None = None
        # Random SSRC and first sequence number and timestamp (RFC 3550 §5.1), from one read
        # of the system's random source.
        self.ssrc, self.sequence, self.timestamp = struct.unpack("!IHI", random_bytes(10))
        self.packets_sent = 0
        self.packets_received = 0
        self.digits_received: list[str] = []
        self._transport: _DatagramSocket | None = None
        self._last_event_timestamp: int | None = None
        # Prompts and digits take turns (see play, send_digits); made on the first of them,
        # as a <Pause> or a bridged call never sends either.
        self._send_lock: asyncio.Lock | None = None
        self._streaming = False  # a prompt or digits hold the lock: no silence meanwhile
        self._playing: _Playing | None = None  # the prompt the clock is streaming
        # A bridged call (<Dial>): the caller's RTP (decrypted) goes to ``relay`` instead of
        # being heard here, and the stream sends only what ``forward`` gives it.
        self.relay: Callable[[bytes], None] | None = None

    @property
    def plan(self) -> MediaPlan | None:
        return self._plan

    @plan.setter
    def plan(self, plan: MediaPlan | None) -> None:
        """A new plan (answer, re-INVITE) latches afresh and restarts the silence clock."""
        self._plan = plan
        self._latched = None
        self._to = (plan.remote_host, plan.remote_port) if plan is not None else None
        transport = self._transport  # (its loop is the running one)
        self._heard_at = transport._loop.time() if transport is not None else 0.0

    async def open(self) -> int:
        """Bind an even RTP port and the RTCP port above it; the RTP port is returned."""
        loop = asyncio.get_running_loop()
        kept = self._ports.take(loop, self.local_host) if self._ports is not None else None
        if kept is not None:
            self._transport, self._rtcp, self._stale = kept
            queued = _anything_queued(self._transport, self._rtcp)
            self._transport.reuse(self._on_packet, drain=queued)
            self._rtcp.reuse(self._on_rtcp, drain=queued)
            port = self._transport.port
        else:
            rtp_sock, rtcp_sock, port = _port_pair(self.local_host)
            self._transport = _DatagramSocket(loop, rtp_sock, self._on_packet,
                                              (self.local_host, port))
            if rtcp_sock is not None:
                self._rtcp = _DatagramSocket(loop, rtcp_sock, self._on_rtcp,
                                             (self.local_host, port + 1))
        self._report_at = loop.time() + RTCP_INTERVAL
        self._clock = MediaClock.of(loop)
        self._clock.join(self)
        return port

    @property
    def port(self) -> int | None:
        return self._transport.port if self._transport else None

    @property
    def rtcp_port(self) -> int | None:
        return self._rtcp.port if self._rtcp else None

    def close(self) -> None:
        if self._clock is not None:
            self._clock.leave(self)
            self._clock = None
        self._end_playing()  # no more ticks: a prompt still playing ends here
        transport, rtcp = self._transport, self._rtcp
        if self._ports is not None and transport is not None and rtcp is not None:
            stale = self._stale
            if self._latched is not None and self._heard_ssrc is not None:
                heard = (*self._latched, self._heard_ssrc)
                stale = frozenset((heard, *list(stale)[:STALE_SOURCES - 1]))
            if self._ports.give(transport._loop, self.local_host, transport, rtcp, stale):
                self._transport = self._rtcp = None
                return
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._rtcp is not None:
            self._rtcp.close()
            self._rtcp = None

    def _tick(self, now: float) -> None:
        """Every 20 ms (see :class:`MediaClock`): a prompt's next frame, or silence when no
        prompt is playing; every 5 s: a sender report; and the inactivity check."""
        if self._playing is not None:
            self._play_frame(self._playing)
        plan = self._plan
        transport = self._transport
        if plan is None or transport is None:
            return
        if plan.sending and not self._streaming and self.relay is None:
            if self.srtp is None and self._to is not None:
                # Plain RTP silence, the steady state of most calls: the shared packet with
                # this stream's numbers written in, no per-packet objects.
                packet = _SILENCE_PACKETS[plan.payload_type]
                _SET_SEQUENCE(packet, 2, self.sequence, self.timestamp, self.ssrc)
                transport.sendto(packet, self._to)
                self._frame_sent(FRAME_SAMPLES)
            else:
                self._send_frame(SILENCE[plan.payload_type], marker=False)
        if now >= self._report_at:
            self._report_at = now + RTCP_INTERVAL
            self._send_report()
        if (self.inactivity_timeout and plan.receiving and self.on_inactive is not None
                and now - self._heard_at > self.inactivity_timeout):
            callback, self.on_inactive = self.on_inactive, None
            callback()

    # ------------------------------------------------------------------ sending
    def _sending(self) -> asyncio.Lock:
        lock = self._send_lock
        if lock is None:
            lock = self._send_lock = asyncio.Lock()
        return lock

    async def play(self, prompt: Prompt, stop: asyncio.Event | None = None) -> int:
        """Stream ``prompt`` in real time; returns the packets sent. Stops early on ``stop``."""
        plan = self._plan
        if (plan is None or self._transport is None or self._clock is None or not prompt
                or not plan.sending):
            # Nothing to send to (or held, or the stream stopped sending): still take the
            # prompt's time.
            await _sleep_unless(prompt.seconds, stop)
            return 0
        async with self._sending():
            self._streaming = True
            try:
                return await self._stream(prompt, stop)
            finally:
                self._streaming = False

    async def _stream(self, prompt: Prompt, stop: asyncio.Event | None) -> int:
        """The prompt's frames go out on the clock's ticks, one a tick in place of silence
        (see _play_frame): the playing task sleeps once per prompt instead of once per frame,
        and the stream keeps one even 20 ms pace across silence and prompts."""
        plan = self._plan
        assert plan is not None
        playing = self._playing = _Playing(prompt, plan.payload_type, stop,
                                           asyncio.get_running_loop().create_future())
        try:
            return await playing.done
        finally:
            if self._playing is playing:
                self._playing = None

    def _play_frame(self, playing: _Playing) -> None:
        """One tick of a playing prompt: its next frame, or its end when the stop event is set
        or the stream closed. The tick that sends the last frame ends it too: a prompt that
        follows starts on the next tick, and silence resumes there if none does, so the
        stream has no gap."""
        frame = playing.frame
        stop = playing.stop
        if (frame >= playing.prompt.frame_count or (stop is not None and stop.is_set())
                or self._transport is None):
            self._end_playing()
            return
        plan = self._plan
        if plan is not None and plan.sending:  # a hold mid-prompt silences it at once
            self._send_frame(playing.prompt.frame(frame, playing.payload_type),
                             marker=frame == 0)
            playing.sent += 1
        else:
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        playing.frame = frame + 1
        if playing.frame >= playing.prompt.frame_count:
            self._end_playing()

    def _end_playing(self) -> None:
        playing, self._playing = self._playing, None
        if playing is not None and not playing.done.done():
            playing.done.set_result(playing.sent)

    def _send_frame(self, chunk: bytes, *, marker: bool) -> None:
        plan = self._plan
        if plan is None:
            return
        transport = self._transport
        if self.srtp is None and transport is not None and self._to is not None:
            # Plain RTP: header and payload written into one reused buffer, no new bytes.
            packet = _FRAME_PACKET
            _SET_HEADER(packet, 0, 0x80, (0x80 if marker else 0) | plan.payload_type,
                        self.sequence, self.timestamp, self.ssrc)
            packet[12:] = chunk
            transport.sendto(packet, self._to)
        else:
            header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | plan.payload_type,
                                 self.sequence, self.timestamp, self.ssrc)
            self._send(header + chunk, self._destination(plan))
        self._frame_sent(len(chunk))

    def _frame_sent(self, octets: int) -> None:
        """Count a frame of ``octets`` payload sent and move the numbers on to the next."""
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += octets

    def _send_report(self) -> None:
        plan = self._plan
        if plan is None or self._rtcp is None or plan.rtcp_port is None:
            return
        cname = f"siptwin@{self.local_host}"
        if plan.sending:
            report = sender_report(self.ssrc, self.timestamp, self.packets_sent,
                                   self.octets_sent, time.time(), cname=cname)
        else:
            # Held (recvonly) or inactive: RTCP goes on (RFC 3264 §5.1), as receiver reports
            # since we send no RTP (RFC 3550 §6.4.2); a phone counts them as liveness.
            report = receiver_report(self.ssrc, cname=cname)
        if self.srtp is not None:
            report = self.srtp.protect_rtcp(report)
        host = self._latched[0] if self._latched is not None else plan.remote_host
        self._rtcp.sendto(report, (host, plan.rtcp_port))
        self.rtcp_sent += 1

    async def send_digits(self, digits: str, stop: asyncio.Event | None = None) -> None:
        """``<Play digits="…">``: RFC 4733 events, ``w`` waits half a second."""
        for key in digits:
            if stop is not None and stop.is_set():
                return
            if key.lower() == "w" or key.upper() not in EVENT_DIGITS:
                await _sleep_unless(0.5, stop)
                continue
            plan = self.plan
            if (plan is None or plan.event_payload_type is None or self._transport is None
                    or not plan.sending):
                await _sleep_unless(0.1, stop)
                continue
            async with self._sending():
                self._streaming = True
                try:
                    packets = telephone_event_packets(key, plan.event_payload_type,
                                                      self.sequence, self.timestamp, self.ssrc)
                    for packet in packets:
                        if self._transport is None:
                            return
                        self._send(packet, self._destination(plan))
                        self.packets_sent += 1
                        await asyncio.sleep(FRAME_SECONDS)
                    self.sequence = (self.sequence + len(packets)) & 0xFFFF
                    self.timestamp = (self.timestamp + 800 + FRAME_SAMPLES) & 0xFFFFFFFF
                finally:
                    self._streaming = False

    def forward(self, packet: bytes) -> None:
        """Send one RTP packet of the bridged leg to the caller (protected if the call is SRTP)."""
        plan = self._plan
        if plan is None or not plan.sending or len(packet) < 12:
            return
        self._send(packet, self._destination(plan))
        self.packets_sent += 1
        self.octets_sent += len(packet) - 12

    def _send(self, packet: bytes, destination: tuple[str, int]) -> None:
        if self._transport is None:
            return
        if self.srtp is not None:
            packet = self.srtp.protect(packet)
        self._transport.sendto(packet, destination)

    # ------------------------------------------------------------------ receiving
    def _destination(self, plan: MediaPlan) -> tuple[str, int]:
        """Symmetric RTP: once latched, answer where the caller's packets come from."""
        return self._latched or (plan.remote_host, plan.remote_port)

    def _from_caller(self, host: str) -> bool:
        plan = self._plan
        return plan is not None and (host == plan.remote_host or host == self.peer_host)

    def _latches(self, source: tuple[str, int]) -> bool:
        """True for a packet from the latched source: the first packet from the SDP's address
        or the call's signalling address fixes it; any other source is ignored."""
        if not self._from_caller(source[0]):
            return False
        if self._latched is None:
            self._latched = self._to = (source[0], source[1])
        return self._latched == (source[0], source[1])

    def _stale_rtp(self, data: bytes, source: tuple[str, int]) -> bool:
        """RTP of an earlier call on these reused ports: its source and SSRC, unless this
        call's SDP names that very address (a peer such as SIPp playing a capture sends every
        call from one port with one SSRC: then it is this call's)."""
        if (source[0], source[1], data[8:12]) not in self._stale:
            return False
        plan = self._plan
        return plan is None or (source[0], source[1]) != (plan.remote_host, plan.remote_port)

    def release_early(self) -> None:
        """The plan and keys are in place: handle what arrived before, then packets as they come."""
        early, self._early = self._early, None
        for data, source in early or ():
            self._on_packet(data, source)

    def _on_packet(self, data: bytes, source: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        if self._early is not None:
            if len(self._early) < EARLY_PACKETS:
                self._early.append((data, source))
            return
        if self._stale and self._stale_rtp(data, source):
            self.packets_ignored += 1  # an earlier call's peer still sending to this port
            return
        if not self._latches(source):
            self.packets_ignored += 1
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect(data)
            if clear is None:
                return
            data = clear
        self._heard_ssrc = data[8:12]
        self.packets_received += 1
        self._heard_at = asyncio.get_running_loop().time()
        if self.relay is not None:
            self.relay(data)
            return
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


    def _on_rtcp(self, data: bytes, source: tuple[str, int]) -> None:
        plan = self._plan
        if len(data) < 8 or data[0] >> 6 != 2 or plan is None or not self._from_caller(source[0]):
            return
        if (self._stale and (source[0], source[1]) != (plan.remote_host, plan.rtcp_port)
                and any(data[4:8] == ssrc for _, _, ssrc in self._stale)):
            return  # a report of an earlier call's peer (its RTP's SSRC, from elsewhere)
        if self.srtp is not None and self.srtp.unprotect_rtcp(data) is None:
            return
        self.rtcp_received += 1


_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)


def _port_pair(host: str) -> tuple[socket.socket, socket.socket | None, int]:
    """An even RTP port with the odd RTCP port above it, in Twilio's media range; any free
    port (and no RTCP) if the range is exhausted. Returns the sockets and the RTP port. The region address is numeric: bound
    directly rather than through the resolver."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM | _NONBLOCK  # born non-blocking where the system allows
    for _ in range(64):
        port = secrets.randbelow((RTP_PORTS[1] - RTP_PORTS[0]) // 2) * 2 + RTP_PORTS[0]
        rtp, rtcp = socket.socket(family, kind), socket.socket(family, kind)
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        if not _NONBLOCK:
            rtp.setblocking(False)
            rtcp.setblocking(False)
        return rtp, rtcp, port
    rtp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        rtp.setblocking(False)
        rtp.bind((host, 0))
    except OSError:
        rtp.close()
        raise
    return rtp, None, rtp.getsockname()[1]


def sender_report(ssrc: int, rtp_timestamp: int, packets: int, octets: int, now: float,
                  cname: str) -> bytes:
    """A compound RTCP packet: a sender report (RFC 3550 §6.4.1) and the SDES CNAME every
    compound packet carries (§6.1)."""
    ntp = now + NTP_EPOCH_OFFSET
    seconds = int(ntp)
    fraction = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
    report = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, seconds & 0xFFFFFFFF, fraction,
                         rtp_timestamp & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    return report + _sdes_cname(ssrc, cname)


def receiver_report(ssrc: int, cname: str) -> bytes:
    """A compound RTCP packet for a party that sends no RTP: a receiver report with no report
    blocks (RFC 3550 §6.4.2 allows RC = 0) and the SDES CNAME."""
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc) + _sdes_cname(ssrc, cname)


def _sdes_cname(ssrc: int, cname: str) -> bytes:
    name = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(name)) + name + b"\0"
    chunk += b"\0" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


async def _sleep_unless(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):  # no task around the wait, unlike wait_for
            await stop.wait()


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
