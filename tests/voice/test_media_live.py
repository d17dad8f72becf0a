"""Media like a real endpoint, over real sockets: one RTP port and RFC 3264 origin versions
across re-INVITEs, hold and resume, silence at 20 ms during <Pause>, RTCP sender reports on
RTP + 1, and latching (RTP from another address is ignored)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from siptwin.harness.provision import DomainPlan
from siptwin.sip.message import make_response
from siptwin.sip.sdp import make_offer, parse_sdp
from siptwin.voice.media import telephone_event_packets
from tests.support.rawsip import RawUac, statuses

URI = "sip:1@acme.sip.twilio.com"


def _udp(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def _rtp_and_rtcp() -> tuple[socket.socket, socket.socket]:
    """Two sockets on adjacent ports (RTCP on RTP + 1): the port after a free one may belong to
    another test or process, so try again with another pair rather than fail."""
    for _ in range(50):
        rtp = _udp()
        try:
            return rtp, _udp(port=rtp.getsockname()[1] + 1)
        except OSError:
            rtp.close()
    raise AssertionError("no two adjacent free UDP ports on 127.0.0.1")


def _drain(sock: socket.socket) -> list[bytes]:
    packets = []
    with contextlib.suppress(BlockingIOError):
        while True:
            packets.append(sock.recv(2048))
    return packets


async def _answered(harness, app, document: str, uac: RawUac, rtp_port: int):
    voice = app.twiml("/voice", document)
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    node = harness.node_port("us1")
    leg = uac.leg(URI)
    invite = uac.request(leg, "INVITE", body=make_offer("127.0.0.1", rtp_port, 7))
    got = await uac.transact(invite, node)
    assert statuses(got)[-1] == 200, statuses(got)
    uac.ack_success(leg, invite, got[-1], node)
    return node, leg, got[-1]


async def _finished(harness, call_id: str):
    """The call record once the voice layer has written its media counters."""
    for _ in range(100):
        call = harness.twin.calls.get(call_id)
        if call is not None and call.media and "rtcp_sent" in call.media:
            return call
        await asyncio.sleep(0.05)
    raise AssertionError(f"no media record for {call_id}")


async def _reinvite(uac, node, leg, ok, body):
    request = uac.in_dialog(leg, "INVITE", ok, body=body)
    got = await uac.transact(request, node)
    assert statuses(got)[-1] == 200, statuses(got)
    uac.ack_success(leg, request, got[-1], node)
    return parse_sdp(got[-1].body)


async def test_pause_sends_paced_silence_and_rtcp_reports_from_the_next_port(harness, app):
    rtp, rtcp = _rtp_and_rtcp()
    async with RawUac() as uac:
        node, leg, ok = await _answered(harness, app, '<Response><Pause length="6"/></Response>',
                                        uac, rtp.getsockname()[1])
        loop = asyncio.get_running_loop()
        began = loop.time()
        arrivals: list[float] = []
        packets: list[bytes] = []
        while loop.time() - began < 5.6:
            with contextlib.suppress(TimeoutError):
                data = await asyncio.wait_for(loop.sock_recv(rtp, 2048), 0.5)
                arrivals.append(loop.time())
                packets.append(data)
        reports = _drain(rtcp)
        await uac.transact(uac.in_dialog(leg, "BYE", ok), node)
    rtp.close()
    rtcp.close()
    answer = parse_sdp(ok.body)
    twin_port = answer.media[0].port
    # Silence (PCMU 0xff) all through the pause, at 50 packets a second.
    assert len(packets) >= 5.0 * 50 * 0.85, len(packets)
    assert all(p[12:] == b"\xff" * 160 for p in packets)
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert 0.015 < gaps[len(gaps) // 2] < 0.025  # median spacing 20 ms
    seqs = [struct.unpack("!H", p[2:4])[0] for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    # A compound sender report (PT 200, then SDES) within the first five seconds.
    assert reports and reports[0][1] == 200 and reports[0][28 + 1] == 202
    ssrc = struct.unpack("!I", packets[0][8:12])[0]
    assert struct.unpack("!I", reports[0][4:8])[0] == ssrc
    assert twin_port % 2 == 0
    call = await _finished(harness, leg.call_id)
    assert call.media["rtcp_sent"] >= 1


async def test_a_held_call_gets_receiver_reports_and_no_rtp(harness, app):
    """RFC 3264 §5.1: RTCP goes on while a stream is recvonly; with no RTP of ours to report,
    the reports are receiver reports (RFC 3550 §6.4.2)."""
    rtp, rtcp = _rtp_and_rtcp()
    await harness.provision(DomainPlan("acme", voice_url=app.twiml(
        "/voice", '<Response><Pause length="7"/></Response>'), acl=["127.0.0.1"]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg = uac.leg(URI)
        invite = uac.request(leg, "INVITE", body=make_offer(
            "127.0.0.1", rtp.getsockname()[1], 7, direction="sendonly"))
        got = await uac.transact(invite, node)
        assert statuses(got)[-1] == 200, statuses(got)
        ok = got[-1]
        uac.ack_success(leg, invite, ok, node)
        assert parse_sdp(ok.body).media[0].direction == "recvonly"
        loop = asyncio.get_running_loop()
        reports: list[bytes] = []
        deadline = loop.time() + 6.0
        while not reports and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                reports.append(await asyncio.wait_for(loop.sock_recv(rtcp, 2048), 0.5))
        media = _drain(rtp)
        await uac.transact(uac.in_dialog(leg, "BYE", ok), node)
    rtp.close()
    rtcp.close()
    assert media == []
    assert reports, "no RTCP in 6 s from a held call"
    report = reports[0]
    # RR with no report blocks (V=2, RC=0, PT 201, length 1), then the SDES CNAME.
    assert report[0] == 0x80 and report[1] == 201 and report[2:4] == b"\x00\x01"
    assert report[8] == 0x81 and report[9] == 202


async def test_hold_and_resume_keep_the_port_and_follow_rfc3264_versions(harness, app):
    app.twiml("/digits", "<Response><Say>got it</Say></Response>")
    rtp = _udp()
    port = rtp.getsockname()[1]
    document = ('<Response><Pause length="2"/><Gather action="/digits" numDigits="1" timeout="8">'
                '<Pause length="8"/></Gather></Response>')
    async with RawUac() as uac:
        node, leg, ok = await _answered(harness, app, document, uac, port)
        first = parse_sdp(ok.body)
        await asyncio.sleep(0.3)
        # Unchanged offer (session refresh): same answer, same version (RFC 3264 §8).
        same = await _reinvite(uac, node, leg, ok, make_offer("127.0.0.1", port, 7, version=1))
        assert same.origin.session_version == first.origin.session_version == "1"
        assert same.media[0].port == first.media[0].port
        # Hold: sendonly answered recvonly, version + 1, same port, and no media while held.
        held = await _reinvite(uac, node, leg, ok,
                               make_offer("127.0.0.1", port, 7, version=2, direction="sendonly"))
        assert held.media[0].direction == "recvonly" and held.origin.session_version == "2"
        assert held.media[0].port == first.media[0].port
        await asyncio.sleep(0.1)
        _drain(rtp)
        await asyncio.sleep(1.0)
        assert _drain(rtp) == []
        inactive = await _reinvite(uac, node, leg, ok, make_offer(
            "127.0.0.1", port, 7, version=3, direction="inactive"))
        assert inactive.media[0].direction == "inactive" and inactive.origin.session_version == "3"
        # Resume: sendrecv again, version + 1, media flows again to the same socket.
        resumed = await _reinvite(uac, node, leg, ok, make_offer("127.0.0.1", port, 7, version=4))
        assert resumed.media[0].direction == "sendrecv" and resumed.origin.session_version == "4"
        assert resumed.media[0].port == first.media[0].port
        loop = asyncio.get_running_loop()
        data, twin_media = await asyncio.wait_for(loop.sock_recvfrom(rtp, 2048), 2)
        assert twin_media[1] == first.media[0].port
        # A digit after the resume reaches <Gather>.
        await asyncio.sleep(2.0)
        for packet in telephone_event_packets("5", 101, 10, 4000, 0x99):
            await loop.sock_sendto(rtp, packet, twin_media)
        (hit,) = await app.wait("/digits", timeout=8)
        assert hit.values["Digits"] == "5"
        await uac.transact(uac.in_dialog(leg, "BYE", ok), node)
    rtp.close()


async def test_rtp_from_another_address_is_ignored(harness, app):
    """Issue 15 finding 3: digits injected from a second loopback address never reach
    <Gather>; the listed caller's own digits do."""
    app.twiml("/digits", "<Response><Hangup/></Response>")
    app.twiml("/none", "<Response><Hangup/></Response>")
    rtp, intruder = _udp(), _udp("127.0.0.77")
    document = ('<Response><Gather action="/digits" numDigits="1" timeout="4">'
                '<Pause length="4"/></Gather><Redirect>/none</Redirect></Response>')
    async with RawUac() as uac:
        node, leg, ok = await _answered(harness, app, document, uac, rtp.getsockname()[1])
        loop = asyncio.get_running_loop()
        _, twin_media = await asyncio.wait_for(loop.sock_recvfrom(rtp, 2048), 2)
        for packet in telephone_event_packets("9", 101, 10, 4000, 0x77):
            await loop.sock_sendto(intruder, packet, twin_media)
        # Same address, another port, after the caller's own packet latched the stream.
        await loop.sock_sendto(rtp, struct.pack("!BBHII", 0x80, 0, 1, 1, 5) + b"\xff" * 160,
                               twin_media)
        other_port = _udp()
        for packet in telephone_event_packets("8", 101, 30, 8000, 0x78):
            await loop.sock_sendto(other_port, packet, twin_media)
        await asyncio.sleep(0.5)
        for packet in telephone_event_packets("4", 101, 50, 12000, 0x12):
            await loop.sock_sendto(rtp, packet, twin_media)
        (hit,) = await app.wait("/digits", timeout=6)
        assert hit.values["Digits"] == "4"
        with contextlib.suppress(Exception):
            await uac.transact(uac.in_dialog(leg, "BYE", ok), node)
        other_port.close()
    rtp.close()
    intruder.close()
    call = await _finished(harness, leg.call_id)
    assert call.media["packets_ignored"] >= 2 * 7 and call.media["digits_received"] == "4"


async def test_bye_waits_for_the_ack_of_an_immediately_ended_call(harness, app):
    """RFC 3261 §15: a document that ends at once after answering must not BYE before the
    caller's ACK; the BYE follows the ACK, and the call is completed then."""
    rtp = _udp()
    voice = app.twiml("/voice", "<Response><Hangup/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    node = harness.node_port("us1")
    async with RawUac() as uac:
        leg = uac.leg(URI)
        invite = uac.request(leg, "INVITE", body=make_offer("127.0.0.1", rtp.getsockname()[1], 7))
        got = await uac.transact(invite, node)
        assert statuses(got)[-1] == 200
        await asyncio.sleep(1.2)  # the 200 is retransmitted meanwhile; no BYE may come
        assert uac.requests("BYE", leg.call_id) == []
        assert harness.twin.calls.get(leg.call_id).status == "in-progress"
        uac.ack_success(leg, invite, got[-1], node)
        bye = await uac.wait_for(lambda m: getattr(m, "method", "") == "BYE", 3)
        assert bye is not None
        uac.send(make_response(bye, 200), node)
    rtp.close()
    call = harness.twin.calls.get(leg.call_id)
    assert call.status == "completed"


def _rtp(ssrc: int, sequence: int = 1) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, sequence, 160 * sequence, ssrc) + b"\xff" * 160


async def _settle(stream, packets: int) -> None:
    """Let the loop read what was sent to ``stream`` (loopback delivers at once)."""
    for _ in range(50):
        if stream.packets_received + stream.packets_ignored >= packets:
            return
        await asyncio.sleep(0.01)


async def test_reused_media_ports_never_hand_a_previous_calls_packets_to_a_new_call():
    from siptwin.voice import media

    ports = media.MediaPorts(max_pairs=4, reuse_after=0.5)  # long enough for a loaded machine
    old_peer, new_peer = _udp(), _udp()
    try:
        first = media.MediaStream("127.0.0.1", peer_host="127.0.0.1", ports=ports)
        port = await first.open()
        first.plan = media.MediaPlan("127.0.0.1", old_peer.getsockname()[1], media.PCMU, None)
        first.release_early()
        old_peer.sendto(_rtp(0x1111), ("127.0.0.1", port))
        await _settle(first, 1)
        assert first.packets_received == 1
        first.close()
        assert len(ports) == 1
        old_peer.sendto(_rtp(0x1111, 2), ("127.0.0.1", port))  # queued while the pair is idle

        soon = media.MediaStream("127.0.0.1", ports=ports)
        # Not before reuse_after: fresh ports (kept open till the end, so that the pool
        # holds one pair only).
        assert await soon.open() != port
        await asyncio.sleep(0.55)

        second = media.MediaStream("127.0.0.1", peer_host="127.0.0.1", ports=ports)
        old_peer.sendto(_rtp(0x3333), ("127.0.0.1", port))  # still queued when the pair is taken
        assert await second.open() == port and ports.reused == 1
        old_peer.sendto(_rtp(0x1111, 3), ("127.0.0.1", port))  # the old call's peer goes on
        second.plan = media.MediaPlan("127.0.0.1", new_peer.getsockname()[1], media.PCMU, None)
        second.release_early()
        await _settle(second, 1)
        new_peer.sendto(_rtp(0x2222), ("127.0.0.1", port))
        await _settle(second, 2)
        # Only the new call's own packet counts, and it latched the new peer, not the old one.
        assert second.packets_received == 1 and second.packets_ignored == 1
        assert second._latched == new_peer.getsockname()[:2]
        second.close()
        await asyncio.sleep(0.55)

        # A peer that sends every call from one port with one SSRC (SIPp playing a capture):
        # the call whose SDP names that address hears it on reused ports too.
        third = media.MediaStream("127.0.0.1", peer_host="127.0.0.1", ports=ports)
        assert await third.open() == port
        third.plan = media.MediaPlan("127.0.0.1", new_peer.getsockname()[1], media.PCMU, None)
        third.release_early()
        new_peer.sendto(_rtp(0x2222, 2), ("127.0.0.1", port))
        await _settle(third, 1)
        assert third.packets_received == 1 and third.packets_ignored == 0
        third.close()
        soon.close()
    finally:
        ports.close()
        old_peer.close()
        new_peer.close()
    assert len(ports) == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))  # closed for good: the port is free again
