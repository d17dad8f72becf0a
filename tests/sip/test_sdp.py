"""SDP parsing and G.711 offer/answer as Twilio's SIP interface does it (spec §4.5)."""

from __future__ import annotations

import base64
import contextlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siptwin.sip.sdp import (
    Answer,
    Attribute,
    Connection,
    CryptoAttribute,
    MediaDescription,
    NoCommonCodec,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    answer_offer,
    choose_crypto,
    make_offer,
    parse_sdp,
    srtp_refusal,
    summarize_offer,
)

ASTERISK_OFFER = (
    b"v=0\r\n"
    b"o=- 1234567 1234567 IN IP4 192.168.1.20\r\n"
    b"s=Asterisk\r\n"
    b"c=IN IP4 192.168.1.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 17000 RTP/AVP 0 8 3 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:3 GSM/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=maxptime:150\r\n"
    b"a=sendrecv\r\n"
)

# baresip-like: opus and G.722 first, PCMA before PCMU, media-level c=, bandwidth, LF endings.
BARESIP_OFFER = (
    b"v=0\n"
    b"o=- 1399612417 3154829330 IN IP4 203.0.113.50\n"
    b"s=-\n"
    b"t=0 0\n"
    b"m=audio 20000 RTP/AVP 96 9 8 0 97\n"
    b"c=IN IP4 203.0.113.50\n"
    b"b=AS:128\n"
    b"a=rtpmap:96 opus/48000/2\n"
    b"a=fmtp:96 stereo=1;sprop-stereo=1\n"
    b"a=rtpmap:9 G722/8000\n"
    b"a=rtpmap:97 telephone-event/8000\n"
    b"a=fmtp:97 0-15\n"
    b"a=rtcp-mux\n"
    b"a=sendrecv\n"
)


def answer(offer: bytes, **kwargs: object) -> Answer:
    result = answer_offer(parse_sdp(offer), "168.86.128.10", 18000, 42, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Answer), result
    return result


# --- Parsing -----------------------------------------------------------------------------


def test_asterisk_offer_parses_and_round_trips_byte_for_byte() -> None:
    offer = parse_sdp(ASTERISK_OFFER)
    assert offer.origin.session_id == "1234567"
    assert offer.session_name == "Asterisk"
    assert offer.connection == Connection("IN", "IP4", "192.168.1.20")
    (audio,) = offer.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 17000, "RTP/AVP")
    assert [c.name for c in audio.codecs()] == ["PCMU", "PCMA", "GSM", "telephone-event"]
    assert audio.codecs()[3].fmtp == "0-16"
    assert audio.attribute_values("ptime") == ("20",)
    assert offer.direction_of(audio) == "sendrecv"
    assert offer.to_bytes() == ASTERISK_OFFER


def test_lf_only_offer_with_media_level_connection_parses() -> None:
    offer = parse_sdp(BARESIP_OFFER)
    (audio,) = offer.media
    assert offer.connection is None
    assert offer.connection_of(audio) == Connection("IN", "IP4", "203.0.113.50")
    assert audio.other_fields == (("b", "AS:128"),)
    codecs = {c.payload_type: c for c in audio.codecs()}
    assert codecs[96].channels == 2 and codecs[96].clock_rate == 48000
    assert codecs[0].name == "PCMU"  # static payload types need no rtpmap
    assert codecs[8].name == "PCMA"
    assert parse_sdp(offer.to_bytes()) == offer


def test_crypto_and_other_attributes_are_kept() -> None:
    body = ASTERISK_OFFER.replace(b"RTP/AVP", b"RTP/SAVP") + (
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    )
    audio = parse_sdp(body).media[0]
    assert audio.is_srtp
    assert audio.attribute_values("crypto")[0].startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")


@pytest.mark.parametrize(
    ("body", "defect"),
    [
        (b"", "empty SDP"),
        (b"\xff\xfe", "not UTF-8"),
        (b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", "must start with v="),
        (b"v=1\r\n", "unsupported SDP version"),
        (b"v=0\r\ns=x\r\nt=0 0\r\n", "missing o= line"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n", "missing s= line"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\n", "missing t= line"),
        (b"v=0\r\no=- 1 1 IN IP4\r\ns=x\r\nt=0 0\r\n", "malformed o= line"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nc=IN IP4\r\nt=0 0\r\n", "malformed c= line"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0\r\n", "malformed t= line"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nx=1\r\n", "unknown line type 'x'"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nbogus\r\n", "not a '<type>=<value>'"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n", "no c= line"),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n", "bad port"),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=audio 1 RTP/AVP\r\n",
            "malformed m= line",
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=audio 1 RTP/AVP PCMU\r\n",
            "bad RTP payload type",
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            b"m=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            "malformed a=rtpmap",
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            b"m=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
            "not allowed inside the m=audio section",
        ),
    ],
)
def test_malformed_sdp_raises_sdp_error_naming_the_defect(body: bytes, defect: str) -> None:
    with pytest.raises(SdpError, match=defect):
        parse_sdp(body)


@pytest.mark.parametrize("number", ["\u00b2", "\u0661"])
def test_non_ascii_digits_are_not_numbers(number: str) -> None:
    body = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
    with pytest.raises(SdpError, match="bad port"):
        parse_sdp(f"{body}m=audio {number} RTP/AVP 0\r\n".encode())
    with pytest.raises(SdpError, match="malformed t= line"):
        parse_sdp(body.replace("t=0 0", f"t={number} 0").encode())


def test_error_names_the_line_number() -> None:
    with pytest.raises(SdpError, match="line 4"):
        parse_sdp(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=x\r\nt=zero\r\n")


# --- Answering ---------------------------------------------------------------------------


def test_answer_picks_pcmu_and_keeps_telephone_event_like_twilio() -> None:
    result = answer(ASTERISK_OFFER)
    assert result.codec.name == "PCMU" and result.codec.payload_type == 0
    assert result.telephone_event is not None and result.telephone_event.payload_type == 101
    body = result.to_bytes().decode()
    assert "s=Twilio Media Gateway\r\n" in body
    assert "c=IN IP4 168.86.128.10\r\n" in body
    assert "m=audio 18000 RTP/AVP 0 101\r\n" in body
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" in body
    assert "a=ptime:20\r\n" in body and body.endswith("a=sendrecv\r\n")
    assert parse_sdp(result.to_bytes()) == result.description


def test_offer_order_wins_over_our_preference() -> None:
    result = answer(BARESIP_OFFER)  # offers PCMA before PCMU
    assert result.codec.name == "PCMA"
    reordered = answer(ASTERISK_OFFER.replace(b"RTP/AVP 0 8 3", b"RTP/AVP 8 0 3"))
    assert reordered.codec.name == "PCMA"
    pcmu_only = answer(
        ASTERISK_OFFER.replace(b"RTP/AVP 0 8 3", b"RTP/AVP 8 0 3"), preferred=("PCMU",)
    )
    assert pcmu_only.codec.name == "PCMU"


def test_telephone_event_keeps_the_offers_payload_type_and_events() -> None:
    result = answer(BARESIP_OFFER)
    assert result.telephone_event is not None
    assert result.telephone_event.payload_type == 97
    media = result.description.media[0]
    assert media.formats == ("8", "97")
    assert "97 0-15" in media.attribute_values("fmtp")


def test_offer_without_telephone_event_gets_none() -> None:
    offer = make_offer("192.0.2.1", 4000, 7, telephone_event=False)
    result = answer(offer)
    assert result.telephone_event is None
    assert not result.offer.telephone_event_offered
    assert result.description.media[0].formats == ("0",)


def test_dynamic_payload_type_for_g711_is_honoured() -> None:
    offer = ASTERISK_OFFER.replace(b"RTP/AVP 0 8 3 101", b"RTP/AVP 110 101").replace(
        b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:110 pcmu/8000"
    )
    result = answer(offer)
    assert result.codec.payload_type == 110
    assert result.description.media[0].formats == ("110", "101")


def test_no_g711_is_a_488_with_a_reason() -> None:
    offer = BARESIP_OFFER.replace(b"RTP/AVP 96 9 8 0 97", b"RTP/AVP 96 9 97")
    result = answer_offer(parse_sdp(offer), "168.86.128.10", 18000, 42)
    assert isinstance(result, NoCommonCodec)
    assert result.sip_status == 488
    assert "opus" in result.reason and "G722" in result.reason
    assert result.offer.audio_codecs == ("opus", "G722", "telephone-event")


def test_video_only_offer_is_a_488() -> None:
    offer = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    )
    result = answer_offer(parse_sdp(offer), "168.86.128.10", 18000, 42)
    assert isinstance(result, NoCommonCodec)
    assert result.reason == "no audio stream offered"


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
        ("sendrecv", "sendrecv"),
    ],
)
def test_direction_is_mirrored(offered: str, answered: str) -> None:
    result = answer(make_offer("192.0.2.1", 4000, 7, direction=offered))
    assert result.direction == answered
    assert result.description.media[0].direction == answered


def test_hold_at_session_level_is_mirrored() -> None:
    offer = ASTERISK_OFFER.replace(b"a=sendrecv\r\n", b"").replace(
        b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n"
    )
    assert answer(offer).direction == "recvonly"


def test_other_streams_are_rejected_with_port_zero() -> None:
    offer = ASTERISK_OFFER + (
        b"m=video 17002 RTP/AVP 96\r\n"
        b"a=rtpmap:96 H264/90000\r\n"
        b"m=audio 17004 RTP/AVP 0\r\n"
        b"m=application 17006 UDP/BFCP *\r\n"
    )
    result = answer(offer)
    media = result.description.media
    assert [(m.media, m.port) for m in media] == [
        ("audio", 18000),
        ("video", 0),
        ("audio", 0),
        ("application", 0),
    ]
    assert media[1].formats == ("96",) and media[3].formats == ("*",)


def test_rejected_first_audio_stream_falls_through_to_the_next() -> None:
    offer = ASTERISK_OFFER.replace(b"m=audio 17000", b"m=audio 0") + b"m=audio 17010 RTP/AVP 8\r\n"
    result = answer(offer)
    assert [m.port for m in result.description.media] == [0, 18000]
    assert result.codec.name == "PCMA"


def test_summary_reports_private_connection_address() -> None:
    result = answer(ASTERISK_OFFER)
    assert result.offer.connection_address == "192.168.1.20"
    assert result.offer.connection_is_private
    public = answer(BARESIP_OFFER).offer
    assert public.connection_address == "203.0.113.50"
    assert not public.connection_is_private
    for address, private in [
        ("10.1.2.3", True),
        ("100.64.0.1", True),
        ("fd00::1", True),
        ("2001:db8::1", False),
        ("pbx.example.com", False),
    ]:
        summary = replace(public, connection_address=address)
        assert summary.connection_is_private is private, address


def test_summary_reports_srtp_offers() -> None:
    plain = answer(ASTERISK_OFFER).offer
    assert not plain.srtp_offered and plain.crypto_suites == ()
    sdes = ASTERISK_OFFER.replace(b"RTP/AVP", b"RTP/SAVP") + (
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
        b"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n"
    )
    secure = answer(sdes, srtp_key=bytes(range(30)))
    assert secure.offer.srtp_offered
    assert secure.offer.crypto_suites == ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
    assert secure.description.media[0].proto == "RTP/SAVP"  # the profile is mirrored
    # RFC 4568: one line answering the first acceptable offered one, under its tag, our key.
    (line,) = secure.description.media[0].attribute_values("crypto")
    assert line == "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(range(30))).decode()
    theirs, ours = secure.crypto
    assert theirs.tag == ours.tag == 1 and ours.key == bytes(range(30)) != theirs.key
    # Without a key of ours an SRTP stream cannot be answered at all (never a keyless SAVP).
    refused = answer_offer(parse_sdp(sdes), "168.86.128.10", 18000, 42)
    assert isinstance(refused, NoCommonCodec) and "SRTP" in refused.reason
    crypto_on_avp = ASTERISK_OFFER + b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\n"
    assert summarize_offer(parse_sdp(crypto_on_avp)).srtp_offered


@pytest.mark.parametrize("lines, reason", [
    ([], "without an a=crypto line"),
    (["1 AES_256_CM_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(46)).decode()],
     "AES_256_CM_HMAC_SHA1_80 is not supported"),
    (["1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode() + "|2^20|1:4"],
     "MKI"),
    (["1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode() + ";inline:"
      + base64.b64encode(bytes(30)).decode()], "several keys"),
    (["1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(16)).decode()], "16 bytes"),
    (["x AES_CM_128_HMAC_SHA1_80"], "is not <tag>"),
])
def test_unkeyable_crypto_lines_are_refused_with_a_reason(lines, reason) -> None:
    offer = parse_sdp(make_offer("192.0.2.1", 4000, 1, crypto=lines)
                      .replace(b"RTP/AVP", b"RTP/SAVP"))
    refusal = srtp_refusal(offer)
    assert refusal is not None and reason in refusal
    assert srtp_refusal(parse_sdp(make_offer("192.0.2.1", 4000, 1))) is None  # plain RTP


def test_the_32_bit_tag_suite_is_accepted_in_either_order() -> None:
    key = base64.b64encode(bytes(range(30))).decode()
    offer = parse_sdp(make_offer("192.0.2.1", 4000, 1, crypto=[
        "5 AES_256_CM_HMAC_SHA1_32 inline:" + base64.b64encode(bytes(46)).decode(),
        "7 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|2^31"]))
    chosen = choose_crypto(offer.media[0])
    assert isinstance(chosen, CryptoAttribute)
    assert (chosen.tag, chosen.suite, chosen.key, chosen.lifetime) == (
        7, "AES_CM_128_HMAC_SHA1_32", bytes(range(30)), "2^31")


def test_make_offer_is_a_valid_g711_offer() -> None:
    body = make_offer("192.0.2.1", 4000, 99)
    offer = parse_sdp(body)
    (audio,) = offer.media
    assert audio.formats == ("0", "8", "101")
    assert [c.name for c in audio.codecs()] == ["PCMU", "PCMA", "telephone-event"]
    assert offer.origin == Origin("-", "99", "99", "IN", "IP4", "192.0.2.1")
    ipv6 = parse_sdp(make_offer("2001:db8::1", 4000, 1, codecs=("PCMA",)))
    assert ipv6.connection == Connection("IN", "IP6", "2001:db8::1")
    with pytest.raises(ValueError, match="opus"):
        make_offer("192.0.2.1", 4000, 1, codecs=("opus",))


# --- Properties --------------------------------------------------------------------------

_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789.-_", min_size=1, max_size=10)
_free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"),
    max_size=20,
)
_attribute_names = _words.filter(lambda name: name not in ("rtpmap", "fmtp"))
_attributes = st.lists(
    st.builds(Attribute, _attribute_names, st.none() | _free_text), max_size=4
).map(tuple)
_connections = st.builds(Connection, st.just("IN"), st.sampled_from(["IP4", "IP6"]), _words)
_media = st.builds(
    MediaDescription,
    media=st.sampled_from(["audio", "video", "application"]),
    port=st.integers(0, 65535),
    proto=st.just("RTP/AVP"),
    formats=st.lists(st.integers(0, 127).map(str), min_size=1, max_size=5).map(tuple),
    port_count=st.none() | st.integers(1, 4),
    connections=st.lists(_connections, max_size=2).map(tuple),
    attributes=_attributes,
    other_fields=st.lists(st.tuples(st.sampled_from("ibk"), _free_text), max_size=2).map(
        lambda fields: tuple(sorted(fields, key=lambda f: "ibk".index(f[0])))
    ),
)
_sessions = st.builds(
    SessionDescription,
    origin=st.builds(Origin, _words, _words, _words, st.just("IN"), st.just("IP4"), _words),
    session_name=_free_text,
    timings=st.lists(
        st.builds(
            Timing,
            st.integers(0, 2**40),
            st.integers(0, 2**40),
            st.lists(_words, max_size=1).map(tuple),
        ),
        min_size=1,
        max_size=2,
    ).map(tuple),
    connection=_connections,
    attributes=_attributes,
    media=st.lists(_media, max_size=3).map(tuple),
    other_fields=st.lists(st.tuples(st.sampled_from("iuepbzk"), _free_text), max_size=3).map(
        lambda fields: tuple(sorted(fields, key=lambda f: "iuepbzk".index(f[0])))
    ),
)


@given(_sessions)
@settings(max_examples=150)
def test_to_bytes_then_parse_round_trips(description: SessionDescription) -> None:
    assert parse_sdp(description.to_bytes()) == description


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_random_bytes_raise_only_sdp_error(body: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(body)


@given(st.data())
@settings(max_examples=300)
def test_mutated_offers_raise_only_sdp_error(data: st.DataObject) -> None:
    body = bytearray(ASTERISK_OFFER)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(body) - 1))
        body[index] = data.draw(st.sampled_from(b" =:/\r\n0a\xff"))
    try:
        offer = parse_sdp(bytes(body))
    except SdpError:
        return
    answer_offer(offer, "168.86.128.10", 18000, 1)  # whatever parses can be answered
