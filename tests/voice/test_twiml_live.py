"""TwiML turned into SIP outcomes and RTP, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from siptwin.harness.provision import DomainPlan
from siptwin.sip.message import make_request
from siptwin.sip.sdp import make_offer
from siptwin.voice.media import telephone_event_packets


async def _call(harness, app, document: str, **kwargs):
    voice = app.twiml("/voice", document)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    return await harness.call("us1", "sip:1@acme.sip.twilio.com", **kwargs)


async def test_reject_busy_is_486(harness, app):
    result = await _call(harness, app, '<Response><Reject reason="busy"/><Say>never</Say></Response>')
    assert result.statuses == [100, 180, 486]
    assert harness.twin.calls.get(result.call_id).status == "busy"


async def test_reject_default_is_404_no_answer(harness, app):
    result = await _call(harness, app, "<Response><Reject/></Response>")
    assert result.statuses == [100, 180, 404] and result.header("X-Twilio-Error") is None
    assert harness.twin.calls.get(result.call_id).status == "no-answer"


async def test_first_hangup_answers_then_byes(harness, app):
    result = await _call(harness, app, "<Response><Hangup/></Response>", hold=5)
    assert result.statuses == [100, 180, 200] and result.ended_by_remote


async def test_first_hangup_can_reject_by_setting(harness, app):
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"first_verb_hangup": "reject"}))
    result = await _call(harness, app, "<Response><Hangup/></Response>")
    assert result.statuses == [100, 180, 404]


async def test_empty_response_answers_then_byes(harness, app):
    result = await _call(harness, app, "<Response/>", hold=5)
    assert result.statuses == [100, 180, 200] and result.ended_by_remote
    call = harness.twin.calls.get(result.call_id)
    assert call.status == "completed" and call.alerts == ()


async def test_redirect_chain_stays_ringing_until_the_last_document(harness, app):
    app.twiml("/two", "<Response><Redirect method=\"GET\">/three</Redirect></Response>")
    app.twiml("/three", '<Response><Reject reason="busy"/></Response>')
    result = await _call(harness, app, "<Response><Redirect>two</Redirect></Response>")
    assert result.statuses == [100, 180, 486]  # nothing new while the chain is fetched
    hits = [(hit.path, hit.method, hit.values["CallStatus"], hit.signature_valid)
            for hit in app.hits]
    assert hits == [("/voice", "POST", "ringing", True), ("/two", "POST", "ringing", True),
                    ("/three", "GET", "ringing", True)]


async def test_redirect_loop_stops_at_the_limit_with_11215(harness, app):
    harness.twin.set_fidelity(harness.twin.fidelity.with_overrides({"max_redirects": 3}))
    result = await _call(harness, app, "<Response><Redirect>/voice</Redirect></Response>")
    assert result.statuses == [100, 180, 500]
    assert len(app.of("/voice")) == 4
    assert harness.twin.calls.get(result.call_id).alerts[0].code == 11215


async def test_inline_twiml_url_needs_no_network(harness):
    await harness.provision(DomainPlan(
        "acme", voice_url='twiml:<Response><Reject reason="busy"/></Response>', acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com")
    assert result.statuses == [100, 180, 486]


async def test_twimlets_message_is_answered_locally_and_said(harness):
    rtp = _rtp_socket()
    await harness.provision(DomainPlan(
        "acme", voice_url="http://twimlets.com/message?Message%5B0%5D=Hello%20world",
        acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", hold=10,
                                sdp=make_offer("127.0.0.1", rtp.getsockname()[1], 1))
    assert result.statuses == [100, 180, 200] and result.ended_by_remote
    assert _drain(rtp) > 10
    call = harness.twin.calls.get(result.call_id)
    assert call.webhooks[0]["offline"] and call.media["packets_sent"] > 10


def _rtp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> int:
    count = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            data = sock.recv(2048)
            if len(data) == 12 + 160 and data[0] == 0x80:
                count += 1
    sock.close()
    return count


async def test_say_sends_paced_g711_rtp_to_the_offered_address(harness, app):
    rtp = _rtp_socket()
    offer = make_offer("127.0.0.1", rtp.getsockname()[1], 1, codecs=("PCMA", "PCMU"))
    result = await _call(harness, app, "<Response><Say>one two three</Say></Response>",
                         sdp=offer, hold=10)
    assert result.statuses == [100, 180, 200] and result.ended_by_remote
    packets = []
    with contextlib.suppress(BlockingIOError):
        while True:
            packets.append(rtp.recv(2048))
    rtp.close()
    assert len(packets) >= 20  # about a second of speech-length tone at 50 packets/s
    headers = [struct.unpack("!BBHII", p[:12]) for p in packets]
    assert {h[1] & 0x7F for h in headers} == {8}  # PCMA, the offer's first choice
    assert headers[0][1] & 0x80  # marker on the first packet
    assert len({h[4] for h in headers}) == 1
    assert all((b[2] - a[2]) & 0xFFFF == 1 for a, b in zip(headers, headers[1:], strict=False))
    assert all((b[3] - a[3]) & 0xFFFFFFFF == 160 for a, b in zip(headers, headers[1:], strict=False))
    answer = result.final.body.decode()
    assert "m=audio" in answer and " 8" in answer.split("m=audio", 1)[1].split("\r\n")[0]


async def test_gather_collects_rfc4733_digits_and_posts_them_to_the_action(harness, app):
    app.twiml("/digits", "<Response><Hangup/></Response>")
    rtp = _rtp_socket()
    document = ('<Response><Gather action="/digits" numDigits="2" timeout="3">'
                "<Say>press two keys</Say></Gather><Say>no input</Say></Response>")

    async def press_keys() -> None:
        loop = asyncio.get_running_loop()
        data, twin_media = await loop.sock_recvfrom(rtp, 2048)  # the twin is talking: reply
        for index, digit in enumerate("42"):
            for packet in telephone_event_packets(digit, 101, 100 + 10 * index,
                                                  1000 + 2000 * index, 0x1234):
                await loop.sock_sendto(rtp, packet, twin_media)

    presser = asyncio.ensure_future(press_keys())
    result = await _call(harness, app, document, hold=10,
                         sdp=make_offer("127.0.0.1", rtp.getsockname()[1], 1))
    await presser
    rtp.close()
    (hit,) = await app.wait("/digits")
    assert hit.values["Digits"] == "42" and hit.values["CallStatus"] == "in-progress"
    assert hit.signature_valid and result.ended_by_remote


async def test_gather_collects_sip_info_digits(harness, app):
    app.twiml("/digits", "<Response><Hangup/></Response>")
    document = ('<Response><Gather action="/digits" timeout="3"><Pause length="1"/></Gather>'
                "</Response>")
    voice = app.twiml("/voice", document)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    host, port = harness.node_port("us1")

    async def send_info() -> None:
        while (call := harness.twin.calls.last()) is None or call.status != "in-progress":
            await asyncio.sleep(0.02)
        sock = _rtp_socket()
        # The dialog's own tags (RFC 3261 §12.2.2: the Call-ID alone does not name a dialog).
        dialog = harness.twin.nodes["us1"]._dialogs[call.call_id]
        from_tag, to_tag = dialog.invite.from_.tag, dialog.to_tag
        for cseq, key in enumerate("7#", start=10):
            info = make_request("INFO", "sip:1@acme.sip.twilio.com", [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{sock.getsockname()[1]};branch=z9hG4bKinfo{cseq}"),
                ("Max-Forwards", "70"), ("From", f"<sip:x@127.0.0.1>;tag={from_tag}"),
                ("To", f"<sip:1@acme.sip.twilio.com>;tag={to_tag}"), ("Call-ID", call.call_id),
                ("CSeq", f"{cseq} INFO"), ("Content-Type", "application/dtmf-relay"),
            ], f"Signal={key}\r\nDuration=160\r\n".encode())
            sock.sendto(info.to_bytes(), (host, port))
            await asyncio.sleep(0.05)
        sock.close()

    sender = asyncio.ensure_future(send_info())
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", hold=10)
    await sender
    (hit,) = await app.wait("/digits")
    assert hit.values["Digits"] == "7" and hit.values["FinishedOnKey"] == "#"
    assert result.ended_by_remote


async def test_cancel_while_the_webhook_is_fetched_abandons_it(harness, app):
    voice = app.twiml("/voice", "<Response><Say>too late</Say></Response>", delay=1.0)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"],
                                       voice_status_callback_url=app.url("/status")))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", cancel_after=0.3)
    assert result.statuses == [100, 180, 487]
    hits = await app.wait("/status", 3)
    assert [h.values["CallStatus"] for h in hits] == ["initiated", "ringing", "canceled"]
    call = harness.twin.calls.get(result.call_id)
    assert call.status == "canceled" and call.answered_at is None


async def test_late_offer_media_goes_where_the_acks_answer_says(harness, app):
    """An INVITE without SDP: the 200 carries the twin's offer (PCMU, PCMA, telephone-event),
    the ACK carries our answer, and the twin's RTP follows that answer."""
    rtp = _rtp_socket()
    voice = app.twiml("/voice", "<Response><Say>one two three</Say></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    answer = make_offer("127.0.0.1", rtp.getsockname()[1], 7, codecs=("PCMA",))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", sdp=None, ack_sdp=answer,
                                hold=10)
    assert result.statuses == [100, 180, 200] and result.ended_by_remote
    offer = result.final.body.decode()
    assert "m=audio" in offer and " 0 8" in offer  # the twin offered G.711
    packets = []
    with contextlib.suppress(BlockingIOError):
        while True:
            packets.append(rtp.recv(2048))
    rtp.close()
    assert len(packets) >= 20
    assert {p[1] & 0x7F for p in packets} == {8}  # PCMA: the codec our answer chose
    call = harness.twin.calls.get(result.call_id)
    assert call.media["packets_sent"] == len(packets)
    assert not any("media not sent" in note for note in call.notes)


async def test_late_offer_without_an_answer_in_the_ack_sends_no_media(harness, app):
    voice = app.twiml("/voice", "<Response><Say>one</Say></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    result = await harness.call("us1", "sip:1@acme.sip.twilio.com", sdp=None, hold=10)
    assert result.statuses == [100, 180, 200] and result.ended_by_remote
    call = harness.twin.calls.get(result.call_id)
    assert call.media["packets_sent"] == 0
    assert any("late offer: no RTP destination" in note for note in call.notes)
