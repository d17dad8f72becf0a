"""Signature vectors, TwiML validation, overrides, G.711 and RFC 4733 without sockets."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from siptwin.settings import build_fidelity
from siptwin.voice import media, offline
from siptwin.voice.overrides import split_url
from siptwin.voice.signature import (
    body_sha256,
    compute_signature,
    json_signed_url,
    with_default_port,
)
from siptwin.voice.twiml import TwimlDocument, parse_twiml

URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
          "From": "+14158675309", "To": "+18005551212"}


def test_signature_reproduces_the_sdk_test_vectors():
    assert compute_signature("12345", URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert compute_signature("12345", with_default_port(URL), PARAMS) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    body = b'{"property": "value", "boolean": true}'
    assert body_sha256(body) == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert compute_signature("12345", json_signed_url(URL, body)) == "a9nBmqA0ju/hNViExpshrM61xv4="
    multi = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"),
             ("Digits", "1234")]
    assert compute_signature("12345", URL, multi) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@given(st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
                       st.text(st.characters(blacklist_categories=("Cs",))), max_size=8),
       st.text(alphabet="abcdef0123456789", min_size=8, max_size=32))
def test_the_sdk_validator_accepts_every_signature(params, token):
    signature = compute_signature(token, URL, params)
    assert RequestValidator(token).validate(URL, params, signature)


@pytest.mark.parametrize(("body", "fragment"), [
    (b"<Response><Say>x</Say>", "not well-formed"),
    (b"<Reply/>", "not <Response>"),
    (b"", "empty"),
    (b'<!DOCTYPE r [<!ENTITY a "b">]><Response/>', "document type"),
])
def test_unreadable_documents_are_12100(body, fragment):
    error = parse_twiml(body, "http://app/voice")
    assert not isinstance(error, TwimlDocument)
    assert error.code == 12100 and fragment in error.detail


def test_unknown_parts_are_12200_warnings_and_the_rest_is_kept():
    document = parse_twiml(
        b'<Response><Say loop="x" voice="alice">Hi <break/> there</Say><Shout/>'
        b'<Gather numDigits="2"><Say>a</Say><Dial/></Gather><Enqueue>q</Enqueue></Response>',
        "u")
    assert isinstance(document, TwimlDocument)
    assert [v.name for v in document.verbs] == ["Say", "Gather", "Enqueue"]
    assert document.verbs[0].text == "Hi there" and "loop" not in document.verbs[0].attributes
    assert [c.name for c in document.verbs[1].children] == ["Say"]
    assert [w.code for w in document.warnings] == [12200, 12200, 12200]


def test_connection_overrides_are_clamped_and_stripped():
    fidelity = build_fidelity()
    url, policy = split_url("https://h/p?x=1#ct=50&rt=99999&tt=2000&rc=9&rp=5xx,bogus", fidelity)
    assert url == "https://h/p?x=1"
    assert policy.connect_timeout == 0.1 and policy.read_timeout == 15.0
    assert policy.total_timeout == 2.0 and policy.retries == 5
    assert policy.retries_after("5xx") and not policy.retries_after("ct")
    _, default = split_url("https://h/p", fidelity)
    assert (default.connect_timeout, default.total_timeout, default.retries) == (5.0, 15.0, 1)


def test_twimlets_message_is_built_offline():
    body = offline.answer("http://twimlets.com/message?Message%5B1%5D=http%3A%2F%2Fa%2Fb.mp3"
                          "&Message%5B0%5D=Hello%20%3Cworld%3E")
    assert body.endswith(b"<Response><Say>Hello &lt;world&gt;</Say>"
                         b"<Play>http://a/b.mp3</Play></Response>")
    assert offline.answer("twiml:%3CResponse%2F%3E") == b"<Response/>"


def test_g711_encoders_match_the_reference_points():
    assert media.encode_g711(media.array("h", [0, 32767, -32768]), media.PCMU) == b"\xff\x80\x00"
    assert media.encode_g711(media.array("h", [0, 32767, -32768]), media.PCMA) == b"\xd5\xaa\x2a"


def test_media_plan_follows_the_offer_and_answer():
    offer = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
             b"m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    answer = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              b"m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
              b"a=rtpmap:101 telephone-event/8000\r\n")
    plan = media.plan_media(offer, answer)
    assert plan == media.MediaPlan("10.0.0.1", 4000, media.PCMA, 101, rtcp_port=4001)
    held = media.plan_media(offer.replace(b"101\r\n", b"101\r\na=sendonly\r\n", 1),
                            answer + b"a=recvonly\r\n")
    assert held is not None and not held.sending and held.receiving
    muxed = media.plan_media(offer + b"a=rtcp-mux\r\n", answer)
    assert muxed is not None and muxed.rtcp_port == 4000
    assert media.plan_media(b"", answer) is None


async def test_rfc4733_events_become_one_digit_each():
    got: list[str] = []
    stream = media.MediaStream("127.0.0.1", on_digit=got.append)
    await stream.open()
    stream.plan = media.MediaPlan("127.0.0.1", 9, media.PCMU, 101)
    stream.release_early()
    for index, digit in enumerate("1*#"):
        for packet in media.telephone_event_packets(digit, 101, index * 10, 160 * index, 7):
            stream._on_packet(packet, ("127.0.0.1", 9))
    stream._on_packet(struct.pack("!BBHII", 0x80, 0, 1, 2, 3) + b"\xff" * 160, ("127.0.0.1", 9))
    stream.close()
    await asyncio.sleep(0)
    assert got == ["1", "*", "#"] and stream.packets_received == 1 + sum(
        len(media.telephone_event_packets(d, 101, 0, 0, 7)) for d in "1*#")


async def test_digits_sent_right_after_the_200_are_kept_until_the_plan_is_set():
    # A phone may send RFC 4733 at once; the stream holds what arrives before its plan and
    # keys are in place (bounded), then handles it in order.
    got: list[str] = []
    stream = media.MediaStream("127.0.0.1", on_digit=got.append)
    await stream.open()
    for packet in media.telephone_event_packets("5", 101, 0, 0, 7):
        stream._on_packet(packet, ("127.0.0.1", 9))
    for _ in range(media.EARLY_PACKETS * 2):  # a flood before the plan is dropped past the bound
        stream._on_packet(struct.pack("!BBHII", 0x80, 0, 1, 2, 3) + b"\xff" * 160, ("127.0.0.1", 9))
    assert got == []
    stream.plan = media.MediaPlan("127.0.0.1", 9, media.PCMU, 101)
    stream.release_early()
    stream.close()
    assert got == ["5"] and stream.packets_received == media.EARLY_PACKETS


def _expected_rtp(payload_type: int, sequence: int, timestamp: int, ssrc: int,
                  payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type,
                       sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


async def test_silence_from_the_shared_packet_is_each_streams_own_rtp():
    # The clock's silence is one shared packet per law with each stream's numbers written
    # in: streams ticking in turn must each send their own consecutive RTP, exactly as the
    # general path (_send_frame) builds it, across a sequence wrap and after a prompt frame.
    import socket

    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    streams = [media.MediaStream("127.0.0.1"), media.MediaStream("127.0.0.1")]
    try:
        for receiver in receivers:
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(2)
        expected: list[list[bytes]] = [[], []]
        for index, (stream, law) in enumerate(zip(streams, (media.PCMU, media.PCMA), strict=True)):
            await stream.open()
            stream.plan = media.MediaPlan("127.0.0.1", receivers[index].getsockname()[1], law, 101)
            stream.release_early()
            stream.sequence, stream.timestamp = 0xFFFE, 0xFFFFFF00 + index
        for step in range(4):
            for index, (stream, law) in enumerate(zip(streams, (media.PCMU, media.PCMA),
                                                      strict=True)):
                seq, ts = stream.sequence, stream.timestamp
                if step == 2:  # a prompt frame in between goes the general way
                    stream._send_frame(b"\x01" * 160, marker=True)
                    expected[index].append(_expected_rtp(law, seq, ts, stream.ssrc,
                                                         b"\x01" * 160, marker=True))
                else:
                    stream._tick(0.0)
                    expected[index].append(_expected_rtp(law, seq, ts, stream.ssrc,
                                                         media.SILENCE[law]))
        for index, stream in enumerate(streams):
            got = [receivers[index].recv(2048) for _ in expected[index]]
            assert got == expected[index]
            assert stream.packets_sent == 4 and stream.octets_sent == 4 * 160
            assert stream.sequence == 2 and stream.timestamp == (0xFFFFFF00 + index + 640) & 0xFFFFFFFF
    finally:
        for stream in streams:
            stream.close()
        for receiver in receivers:
            receiver.close()


async def _hand_ticked_stream() -> media.MediaStream:
    """An open PCMU stream taken off the shared media clock: the test ticks it by hand."""
    stream = media.MediaStream("127.0.0.1")
    await stream.open()
    stream.plan = media.MediaPlan("127.0.0.1", 9, media.PCMU, 101)
    assert stream._clock is not None
    stream._clock.leave(stream)
    return stream


async def test_no_silence_while_a_prompt_or_digits_hold_the_stream():
    stream = await _hand_ticked_stream()
    try:
        # A prompt's frames go out on the ticks, one each, in place of silence; the tick of
        # its last frame ends it, and the next tick has the next prompt's first frame or
        # silence: no gap in the stream.
        for _ in range(2):
            before = stream.packets_sent
            playing = asyncio.ensure_future(stream.play(media.tone(440.0, 0.1)))
            await asyncio.sleep(0)
            assert stream.packets_sent == before
            for frame in range(5):
                assert not playing.done()
                stream._tick(0.0)
                assert stream.packets_sent == before + frame + 1
            assert await playing == 5
        stream._tick(0.0)
        assert stream.packets_sent == 11  # silence again
        # Digits are paced by their sender: no silence on top of them.
        sending = asyncio.ensure_future(stream.send_digits("1"))
        await asyncio.sleep(0)
        assert stream.packets_sent == 12
        stream._tick(0.0)
        assert stream.packets_sent == 12
        await sending
        stream._tick(0.0)
        assert stream.packets_sent == 11 + len(media.telephone_event_packets("1", 101, 0, 0, 0)) + 1
    finally:
        stream.close()


async def test_a_prompt_ends_when_its_stop_is_set_or_its_stream_closes():
    stream = await _hand_ticked_stream()
    stop = asyncio.Event()
    playing = asyncio.ensure_future(stream.play(media.tone(440.0, 1.0), stop))
    await asyncio.sleep(0)
    stream._tick(0.0)
    stream._tick(0.0)
    stop.set()
    stream._tick(0.0)
    assert await playing == 2
    playing = asyncio.ensure_future(stream.play(media.tone(440.0, 1.0)))
    await asyncio.sleep(0)
    stream._tick(0.0)
    stream.close()  # the call ended: no more ticks, the player is not left waiting
    assert await asyncio.wait_for(playing, 1) == 1


_DIRECTIONS = st.sampled_from(["", "sendrecv", "sendonly", "recvonly", "inactive"])


@st.composite
def _offers(draw: st.DrawFn) -> bytes:
    session_direction = draw(_DIRECTIONS)
    lines = ["v=0", "o=- 7 7 IN IP4 10.0.0.9", "s=-",
             f"c=IN IP4 {draw(st.sampled_from(['10.0.0.1', '0.0.0.0', '192.0.2.7']))}", "t=0 0"]
    if session_direction:
        lines.append(f"a={session_direction}")
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["audio", "audio", "video"]))
        formats = draw(st.lists(st.sampled_from(["0", "8", "18", "101", "96"]), min_size=1,
                                max_size=4, unique=True))
        port = draw(st.sampled_from([0, 4000, 4002, 30000]))
        lines.append(f"m={kind} {port} RTP/AVP {' '.join(formats)}")
        if draw(st.booleans()):
            lines.append(f"c=IN IP4 {draw(st.sampled_from(['10.0.0.2', '0.0.0.0']))}")
        if "101" in formats:
            lines.append("a=rtpmap:101 telephone-event/8000")
        if "96" in formats:
            lines.append(f"a=rtpmap:96 {draw(st.sampled_from(['PCMA', 'opus', 'PCMU']))}/8000")
        lines.append(draw(st.sampled_from(["", "a=rtcp-mux", "a=rtcp:5001", "a=rtcp:x"])))
        direction = draw(_DIRECTIONS)
        if direction:
            lines.append(f"a={direction}")
    return "".join(line + "\r\n" for line in lines if line).encode()


@given(_offers(), st.lists(st.tuples(st.integers(1, 30000).map(lambda n: n * 2),
                                     st.sampled_from([("PCMU", "PCMA"), ("PCMA",), ("PCMU",)])),
                           min_size=1, max_size=4))
def test_a_plan_made_once_per_offer_and_answer_shape_is_the_plan_made_afresh(body, answers):
    # plan_media keeps the last plan per parsed offer for answers of one template (the same
    # formats and attributes, another port): whatever the answers given in turn, the plan is
    # the one made from freshly parsed copies of the offer and the answer.
    from siptwin.sip.sdp import Answer, answer_offer, parse_sdp

    offer = parse_sdp(body)
    for port, preferred in answers:
        answer = answer_offer(offer, "127.0.1.1", port, 1, preferred)
        if not isinstance(answer, Answer):
            continue
        got = media.plan_media(offer, answer.description)
        assert got == media.plan_media(parse_sdp(body), parse_sdp(answer.to_bytes()))


def test_media_clock_is_one_per_loop() -> None:
    """MediaClock.of remembers the clock it gave last: another loop still gets its own."""
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        first, second = (media.MediaClock.of(loop) for loop in loops)
        assert first is not second
        assert media.MediaClock.of(loops[0]) is first
        assert media.MediaClock.of(loops[1]) is second
        assert media.MediaClock.of(loops[0]) is first
    finally:
        for loop in loops:
            loop.close()
