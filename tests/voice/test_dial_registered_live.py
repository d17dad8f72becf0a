"""<Dial><Sip> to a registered user forks to every binding, and the answered leg is bridged;
<Dial><Sip> to a host name is located by RFC 3263 through a resolver the setting names."""

from __future__ import annotations

import asyncio
import socket
import struct

from dnslib import QTYPE, RR, SRV, A, DNSRecord

from siptwin.harness.provision import DomainPlan
from siptwin.sip.sdp import make_offer, parse_sdp
from siptwin.ua.client import Auth, SipClient
from tests.support import PASSWORD, free_port
from tests.support.twin import by_id

DOMAIN = "acme.sip.twilio.com"


def _rtp(sequence: int, payload_type: int = 0, payload: bytes = b"\x55" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type, sequence, sequence * 160, 0x1234) + payload


def _udp(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def _receive(sock: socket.socket, seconds: float) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 2048), deadline - loop.time())
        except TimeoutError:
            break
        got.append(data)
    return got


async def _phone(harness, *, answer: int | None, after: float, rtp_port: int) -> SipClient:
    phone = SipClient("127.0.0.1", "udp")
    await phone.start()
    phone.answer_calls(make_offer("127.0.0.1", rtp_port, 7), status=answer, after=after)
    host, port = harness.node_port("us1")
    responses = await phone.request(
        "REGISTER", host, port, "sip:acme.sip.twilio.com", to_uri=f"sip:alice@{DOMAIN}",
        headers=[("Contact", f"<sip:alice@127.0.0.1:{phone.local_port}>"), ("Expires", "600")],
        auth=Auth("alice", PASSWORD))
    assert responses[-1].status == 200
    return phone


async def test_dial_forks_to_every_binding_first_answer_wins_and_media_is_relayed(harness, app):
    voice = app.twiml("/voice", '<Response><Dial action="/dialed" timeout="8">'
                                f"<Sip>sip:alice@{DOMAIN}?X-Team=blue</Sip></Dial></Response>")
    app.twiml("/dialed", "<Response/>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"],
                                       sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    desk_media, mobile_media, caller_media = _udp(), _udp(), _udp()
    desk = await _phone(harness, answer=200, after=0.3,
                        rtp_port=desk_media.getsockname()[1])
    mobile = await _phone(harness, answer=None, after=0.0,
                          rtp_port=mobile_media.getsockname()[1])
    host, port = harness.node_port("ie1")
    caller_port = caller_media.getsockname()[1]
    caller = SipClient("127.0.0.1", "udp")
    await caller.start()
    try:
        call = asyncio.ensure_future(caller.invite(
            host, port, "sip:1@acme.sip.ie1.twilio.com", hold=4.0,
            sdp=make_offer("127.0.0.1", caller_port, 3)))
        await asyncio.wait_for(caller.answered.wait(), 10)
        await asyncio.wait_for(_answered(desk), 5)
        twin_sdp = parse_sdp(caller.last.final.body)
        twin_rtp = (twin_sdp.connection_of(twin_sdp.media[0]).host, twin_sdp.media[0].port)
        invite = desk.incoming[0].invite
        leg_sdp = parse_sdp(invite.body)
        leg_rtp = (leg_sdp.connection_of(leg_sdp.media[0]).host, leg_sdp.media[0].port)
        loop = asyncio.get_running_loop()
        for sequence in range(25):  # both ways at once, 20 ms apart
            await loop.sock_sendto(caller_media, _rtp(sequence, payload=b"\x11" * 160), twin_rtp)
            await loop.sock_sendto(desk_media, _rtp(sequence, payload=b"\x22" * 160), leg_rtp)
            await asyncio.sleep(0.02)
        at_desk, at_caller = await asyncio.gather(_receive(desk_media, 1.0),
                                                  _receive(caller_media, 1.0))
        result = await asyncio.wait_for(call, 15)
        (hit,) = await app.wait("/dialed", timeout=5)  # the twin has hung up the desk phone
    finally:
        await caller.close()
        await desk.close()
        await mobile.close()
    caller_audio = [p for p in at_desk if p[12:] == b"\x11" * 160]
    desk_audio = [p for p in at_caller if p[12:] == b"\x22" * 160]
    record = harness.twin.calls.get(result.call_id)
    assert any("relayed" in note for note in record.notes), record.notes
    assert desk.incoming[0].ended  # the twin's BYE reached the phone
    print(f"relayed: caller->desk {len(caller_audio)}/25, desk->caller {len(desk_audio)}/25")
    assert len(caller_audio) >= 20 and len(desk_audio) >= 20
    assert result.established
    assert mobile.incoming and mobile.incoming[0].cancelled and not mobile.incoming[0].answered
    # The INVITE is Twilio's: from the edge's own SIP port, its User-Agent, a Call-ID of
    # 32 hex at 0.0.0.0, the child CallSid, the caller's domain in From, the URI's header.
    ie1 = harness.node_port("ie1")
    assert invite.headers.get("Via").split()[1].split(";")[0] == f"{ie1[0]}:{ie1[1]}"
    assert invite.headers.get("User-Agent") == "Twilio Gateway"
    assert invite.call_id.endswith("@0.0.0.0") and len(invite.call_id.split("@")[0]) == 32
    assert invite.headers.get("X-Twilio-CallSid").startswith("CA")
    assert invite.headers.get("X-Team") == "blue"
    assert f"@{DOMAIN}" in invite.headers.get("From") and "127.0.1" not in invite.headers.get("From")
    assert str(invite.to.uri) == f"sip:alice@{DOMAIN}"
    assert hit.values["DialCallStatus"] == "completed"
    assert hit.values["DialSipResponseCode"] == "200"
    # The BYE that ended the desk's leg is on the caller's record, with its answer.
    assert any(note.startswith("<Dial> BYE to the dialled party sip:alice@127.0.0.1:")
               and note.endswith("answered 200") for note in record.notes), record.notes


async def _answered(phone: SipClient) -> None:
    while not any(call.answered for call in phone.incoming):
        phone.incoming_event.clear()
        await phone.incoming_event.wait()


async def test_a_bye_the_dialled_device_never_answers_is_explained(harness, app):
    """The answered phone goes away mid-call (its socket closed, no BYE): when the leg's
    time limit ends it, the twin's BYE gets no answer, and explain says so on the caller's
    record."""
    voice = app.twiml("/voice", '<Response><Dial timeLimit="2" timeout="8">'
                                f"<Sip>sip:alice@{DOMAIN}</Sip></Dial></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"],
                                       sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    desk = await _phone(harness, answer=200, after=0.1, rtp_port=free_port())
    caller = SipClient("127.0.0.1", "udp")
    await caller.start()
    try:
        host, port = harness.node_port("us1")
        call = asyncio.ensure_future(caller.invite(host, port, "sip:1@acme.sip.us1.twilio.com",
                                                   hold=30.0))
        await asyncio.wait_for(_answered(desk), 10)
        await desk.close()  # gone without a word
        result = await asyncio.wait_for(call, 40)
    finally:
        await caller.close()
        await desk.close()
    assert result.established and result.ended_by_remote  # the twin ended the call
    record = harness.twin.calls.get(result.call_id)
    note = next((n for n in record.notes if n.startswith("BYE not delivered to the dialled "
                                                         "party sip:alice@127.0.0.1:")), None)
    assert note is not None and "no answer within" in note, record.notes
    findings = by_id(harness.twin, result.call_id)
    assert "dialled device" in findings["bye-not-delivered"].sentence


async def test_dial_to_an_unregistered_user_fails_with_32009(harness, app):
    voice = app.twiml("/voice", '<Response><Dial action="/dialed">'
                                f"<Sip>sip:nobody@{DOMAIN}</Sip></Dial></Response>")
    app.twiml("/dialed", "<Response><Say>gone</Say></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"],
                                       sip_registration=True,
                                       registration_credentials=[("alice", PASSWORD)]))
    result = await harness.call("us1", "sip:1@acme.sip.us1.twilio.com", hold=1.0)
    assert result.statuses[-1] == 200
    (hit,) = await app.wait("/dialed", timeout=5)
    assert hit.values["DialCallStatus"] == "failed"
    record = harness.twin.calls.get(result.call_id)
    assert 32009 in [alert.code for alert in record.alerts]


class _Zone(asyncio.DatagramProtocol):
    """A resolver for one name: SRV _sip._udp.pbx.example.test -> box.example.test:port, A."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.questions: list[str] = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        request = DNSRecord.parse(data)
        name, qtype = str(request.q.qname).rstrip("."), QTYPE[request.q.qtype]
        self.questions.append(f"{qtype} {name}")
        reply = request.reply()
        if qtype == "SRV" and name == "_sip._udp.pbx.example.test":
            reply.add_answer(RR(request.q.qname, QTYPE.SRV, rdata=SRV(10, 100, self.port,
                                                                       "box.example.test.")))
        elif qtype == "A" and name == "box.example.test":
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1")))
        elif name.endswith("example.test") and qtype not in ("NAPTR", "SRV", "AAAA"):
            reply.header.rcode = 3  # NXDOMAIN
        self.transport.sendto(reply.pack(), addr)


async def test_dial_by_host_name_follows_srv_from_the_configured_resolver(harness, app):
    phone = SipClient("127.0.0.1", "udp")
    await phone.start()
    phone.answer_calls(make_offer("127.0.0.1", free_port(), 5), status=200, after=0.1)
    loop = asyncio.get_running_loop()
    dns_port = free_port()
    transport, zone = await loop.create_datagram_endpoint(lambda: _Zone(phone.local_port),
                                                          local_addr=("127.0.0.1", dns_port))
    for node in harness.twin.nodes.values():
        node.apply_fidelity(node.fidelity.with_overrides(
            {"dial_dns_server": f"127.0.0.1:{dns_port}"}))
    voice = app.twiml("/voice", '<Response><Dial action="/dialed" timeout="5">'
                                "<Sip>sip:bob@pbx.example.test</Sip>"
                                "<Sip>sip:carol@nowhere.example.test</Sip></Dial></Response>")
    app.twiml("/dialed", "<Response/>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    try:
        result = await harness.call("us1", "sip:1@acme.sip.us1.twilio.com", hold=1.5)
        (hit,) = await app.wait("/dialed", timeout=5)
    finally:
        transport.close()
        await phone.close()
    assert result.statuses[-1] == 200
    assert phone.incoming and phone.incoming[0].answered
    assert str(phone.incoming[0].invite.uri) == "sip:bob@pbx.example.test"
    assert "SRV _sip._udp.pbx.example.test" in zone.questions
    assert "A box.example.test" in zone.questions
    assert hit.values["DialCallStatus"] == "completed"


async def test_dial_to_an_unknown_host_fails_with_11210_and_the_call_goes_on(harness, app):
    loop = asyncio.get_running_loop()
    dns_port = free_port()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Zone(5060),
                                                       local_addr=("127.0.0.1", dns_port))
    for node in harness.twin.nodes.values():
        node.apply_fidelity(node.fidelity.with_overrides(
            {"dial_dns_server": f"127.0.0.1:{dns_port}"}))
    voice = app.twiml("/voice", '<Response><Dial action="/dialed">'
                                "<Sip>sip:carol@nowhere.example.test</Sip></Dial></Response>")
    app.twiml("/dialed", "<Response><Pause length=\"5\"/></Response>")
    await harness.provision(DomainPlan("acme", voice_url=voice, acl=["127.0.0.1"]))
    try:
        result = await harness.call("us1", "sip:1@acme.sip.us1.twilio.com", hold=2.0,
                                    hang_up=True)
    finally:
        transport.close()
    assert result.statuses[-1] == 200
    assert not result.ended_by_remote  # the caller hung up, not the twin (was 12400 at once)
    (hit,) = await app.wait("/dialed", timeout=5)
    assert hit.values["DialCallStatus"] == "failed"
    record = harness.twin.calls.get(result.call_id)
    assert 11210 in [alert.code for alert in record.alerts]
