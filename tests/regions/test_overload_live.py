"""Overload: a node that receives more than it can answer sheds new calls early and cheaply,
and the calls already under way complete (issue 18).

The flood is synthetic and in-process: the messages of SIPp's authenticated flow fed straight
into the us1 node's receive entry point in one burst, so the event loop runs late for as long
as the burst takes. The thresholds are set low so any machine's burst crosses them; the
decision itself (late *and* busy) is unit-tested with made-up ticks below. Datagrams are
judged by how long they waited in the receive buffer: that wait is set on the endpoint, as
its reader does from the kernel's timestamp, so nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions import node as node_module
from siptwin.regions.overload import (
    REFUSED_BRANCHES,
    TAKEN_BRANCHES,
    OverloadGuard,
    ack_branch,
    new_call_branch,
    stateless_refusal,
)
from siptwin.sip.message import parse_datagram
from siptwin.sip.routing import Hop
from siptwin.transport.endpoint import Source
from tests.support import PASSWORD

DOMAIN = "acme.sip.us1.twilio.com"
SDP = ("v=0\r\no=u 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
_NONCE = re.compile(rb'nonce="([^"]+)"')
_OPAQUE = re.compile(rb'opaque="([^"]+)"')
_TO = re.compile(rb"\r\nTo: ([^\r]+)")
_CALL_ID = re.compile(rb"\r\nCall-ID: ([^\r]+)")


class Flood:
    """Callers of one node whose replies are captured by Call-ID instead of sent."""

    def __init__(self, node, transport: str = "udp") -> None:
        self.node = node
        self.source = Source(transport, "127.0.0.1", 5099, node.region.address, 5060)
        self.replies: dict[bytes, list[bytes]] = {}
        node.endpoint.send_now = self._capture

    def _capture(self, data: bytes, hop: Hop) -> None:
        call_id = _CALL_ID.search(data).group(1)
        self.replies.setdefault(call_id, []).append(data)

    def statuses(self, n: int) -> list[int]:
        return [int(r[8:11]) for r in self.replies.get(f"{n}@flood".encode(), [])]

    def last(self, n: int, status: int) -> bytes:
        return next(r for r in reversed(self.replies[f"{n}@flood".encode()])
                    if r.startswith(b"SIP/2.0 %d" % status))

    def request(self, method: str, n: int, branch: str, cseq: int, to: str = "",
                extra: str = "", body: str = "") -> None:
        head = (f"{method} sip:1000@{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-{n}-{branch}\r\n"
                f"From: <sip:alice@127.0.0.1:5099>;tag=f{n}\r\n"
                f"To: {to or f'<sip:1000@{DOMAIN}>'}\r\nCall-ID: {n}@flood\r\n"
                f"CSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:5099>\r\n"
                f"Max-Forwards: 70\r\n{extra}"
                + ("Content-Type: application/sdp\r\n" if body else ""))
        self.node._on_bytes((head + f"Content-Length: {len(body)}\r\n\r\n{body}").encode(),
                            self.source)

    def first_invite(self, n: int) -> None:
        self.request("INVITE", n, "1", 1, body=SDP)

    def authenticated_invite(self, n: int) -> None:
        challenge = self.last(n, 407)
        self.request("ACK", n, "1", 1, _TO.search(challenge).group(1).decode())
        nonce = _NONCE.search(challenge).group(1).decode()
        opaque = _OPAQUE.search(challenge).group(1).decode()
        uri = f"sip:1000@{DOMAIN}"
        ha1 = hashlib.md5(f"alice:sip.twilio.com:{PASSWORD}".encode()).hexdigest()
        ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{nonce}:00000001:c{n}:auth:{ha2}".encode()).hexdigest()
        auth = (f'Proxy-Authorization: Digest username="alice",realm="sip.twilio.com",'
                f'nonce="{nonce}",uri="{uri}",response="{response}",algorithm=MD5,'
                f'cnonce="c{n}",nc=00000001,qop=auth,opaque="{opaque}"\r\n')
        self.request("INVITE", n, "2", 2, extra=auth, body=SDP)

    def ack_and_bye(self, n: int) -> None:
        to = _TO.search(self.last(n, 200)).group(1).decode()
        self.request("ACK", n, "3", 2, to)
        self.request("BYE", n, "4", 3, to)


async def _until(condition, rounds: int = 2000) -> None:
    """Let the event loop run until ``condition()`` holds (bounded by rounds, not by time)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["reject", "drop"])
async def test_a_flooded_node_sheds_new_calls_and_completes_those_under_way(harness, action):
    twin = harness.twin
    twin.set_fidelity(twin.fidelity.with_overrides({"overload_action": action}))
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)],
                                       voice_url='twiml:<Response><Pause length="60"/></Response>'))
    node = twin.nodes["us1"]
    node.overload.lag_limit, node.overload.message_rate = 0.01, 100.0
    # Over TCP: a stream has no receive-buffer clock, so the guard's ticks decide (a late loop
    # while busy); datagrams are judged by their wait (the tests after this one).
    flood = Flood(node, "tcp")

    # The burst: 1,500 new calls in one go. Each is challenged (the node was not overloaded
    # when they arrived), and the loop comes back late.
    burst = range(1500)
    for n in burst:
        flood.first_invite(n)
    # (a burst longer than 500 ms also has the node retransmit early 407s: Timer G)
    assert all(set(flood.statuses(n)) == {100, 407} for n in burst)
    assert not node.overload.shedding
    await _until(lambda: node.overload.shedding)
    assert node.overload.episodes == 1

    # While overloaded: new calls are shed, with no transaction and no call record kept...
    transactions, shed_before = len(node.layer), node.overload.shed
    for n in range(10_000, 10_300):
        flood.first_invite(n)
        flood.first_invite(n)  # its retransmission is shed the same way
    assert node.overload.shed - shed_before == 600
    assert len(node.layer) == transactions
    assert all(twin.calls.get(f"{n}@flood") is None for n in range(10_000, 10_300))
    if action == "reject":
        refusal = flood.last(10_000, 503)
        assert flood.statuses(10_000) == [503, 503]
        assert b"\r\nRetry-After: 1\r\n" in refusal and b";tag=" in refusal
    else:
        assert flood.statuses(10_000) == []
    # ...a retransmitted INVITE of a call already challenged still gets its 407...
    before = len(flood.statuses(7))
    flood.first_invite(7)
    assert set(flood.statuses(7)[before:]) == {407}  # (and maybe a Timer G repeat)
    # ...and the calls that had their challenge go on: authenticated, answered, hung up.
    under_way = range(0, 1500, 5)
    for n in under_way:
        flood.authenticated_invite(n)
    await _until(lambda: all(200 in flood.statuses(n) for n in under_way))
    for n in under_way:
        flood.ack_and_bye(n)
    assert all(flood.last(n, 200).startswith(b"SIP/2.0 200") and b"CSeq: 3 BYE" in flood.last(n, 200)
               for n in under_way)
    assert all(twin.calls.get(f"{n}@flood").status == "completed" for n in under_way)

    # Once the loop keeps up again, new calls are taken.
    await _until(lambda: not node.overload.shedding)
    flood.first_invite(20_000)
    assert flood.statuses(20_000) == [100, 407]


def test_overload_needs_a_late_loop_and_a_busy_node():
    guard = OverloadGuard(lag_limit=0.1, message_rate=1000.0)
    guard.messages = 5000
    assert guard.tick(lateness=0.02, elapsed=0.07) is None  # busy, but on time
    guard.messages = 3
    assert guard.tick(lateness=0.9, elapsed=0.95) is None  # late, but idle: the machine
    assert not guard.shedding
    guard.messages = 2000
    assert guard.tick(lateness=0.3, elapsed=0.35) is True and guard.shedding
    guard.messages = 2000
    assert guard.tick(lateness=0.08, elapsed=0.13) is None  # still late enough: shedding
    guard.messages = 2000
    assert guard.tick(lateness=0.01, elapsed=0.06) is False and not guard.shedding
    assert guard.episodes == 1


def test_overload_shows_in_the_callers_retransmissions_too():
    """Under UDP overload the backlog waits in the socket buffer: the loop keeps time, but the
    callers retransmit what waited unanswered."""
    guard = OverloadGuard(lag_limit=0.1, message_rate=1000.0, retransmission_share=0.2)
    guard.messages, guard.retransmissions = 100, 60
    assert guard.tick(lateness=0.0, elapsed=0.5) is None  # 200 a second: not busy
    guard.messages, guard.retransmissions = 400, 40
    assert guard.tick(lateness=0.0, elapsed=0.05) is None  # busy, 10 % retransmitted
    guard.messages, guard.retransmissions = 400, 120
    assert guard.tick(lateness=0.0, elapsed=0.05) is True  # busy, 30 % retransmitted
    guard.messages, guard.retransmissions = 400, 40
    assert guard.tick(lateness=0.0, elapsed=0.05) is None  # 10 %: not yet clear of it
    guard.messages, guard.retransmissions = 400, 8
    assert guard.tick(lateness=0.0, elapsed=0.05) is False


# ---------------------------------------------------------------------- before parsing

def _invite(via: str = "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-abc", to: str = "<sip:1000@x>",
            extra: str = "") -> bytes:
    return (f"INVITE sip:1000@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP 10.0.0.9;"
            f"branch=z9hG4bK-proxy\r\nFrom: <sip:alice@x>;tag=f1\r\nTo: {to}\r\n"
            f"Call-ID: c1@x\r\nCSeq: 1 INVITE\r\n{extra}Max-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def test_a_new_calls_invite_is_recognised_from_its_bytes():
    assert new_call_branch(_invite()) == b"z9hg4bk-abc"
    compact = _invite().replace(b"\r\nVia:", b"\r\nv :").replace(b"\r\nTo:", b"\r\nt:")
    assert new_call_branch(compact) == b"z9hg4bk-abc"
    # Not new calls, or not sure: the full parse decides.
    assert new_call_branch(_invite(to="<sip:1000@x>;tag=t9")) is None  # in a dialog
    assert new_call_branch(_invite(extra='Proxy-Authorization: Digest username="a"\r\n')) is None
    assert new_call_branch(_invite(extra='authorization : Digest username="a"\r\n')) is None
    assert new_call_branch(_invite().replace(b"INVITE sip", b"ACK sip", 1)) is None
    assert new_call_branch(_invite(extra="Subject: a\r\n folded\r\n")) is None
    assert new_call_branch(_invite(via="SIP/2.0/UDP 127.0.0.1:5099")) is None  # RFC 2543
    assert new_call_branch(_invite(via="SIP/2.0/UDP a;branch=z9hG4bK-1, SIP/2.0/UDP b")) \
        == b"z9hg4bk-1"


def test_an_acks_branch_is_read_from_its_bytes_as_an_invites():
    ack = _invite().replace(b"INVITE sip", b"ACK sip", 1)
    assert ack_branch(ack) == new_call_branch(_invite()) == b"z9hg4bk-abc"
    compact = ack.replace(b"\r\nVia:", b"\r\nv :")
    assert ack_branch(compact) == b"z9hg4bk-abc"
    assert ack_branch(_invite()) is None  # not an ACK
    assert ack_branch(_invite(via="SIP/2.0/UDP 127.0.0.1:5099").replace(b"INVITE sip", b"ACK sip", 1)) \
        is None  # RFC 2543: no branch in the top Via (the second one's is not its)
    assert ack_branch(_invite(via="SIP/2.0/UDP a, SIP/2.0/UDP b;branch=z9hG4bK-2")
                      .replace(b"INVITE sip", b"ACK sip", 1)) is None
    folded = ack.replace(b";branch=z9hG4bK-abc", b"\r\n ;branch=z9hG4bK-abc", 1)
    assert ack_branch(folded) is None
    body = b"v=0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK-body\r\n"
    no_via = (b"ACK sip:1000@x SIP/2.0\r\nCall-ID: c\r\nContent-Length: %d\r\n\r\n" % len(body)
              + body)
    assert ack_branch(no_via) is None  # a Via in the body is not the message's


def test_the_acks_awaited_for_stateless_refusals_are_bounded():
    guard = OverloadGuard(0.1, 100.0)
    for n in range(REFUSED_BRANCHES + 10):
        guard.refused_statelessly(b"b%d" % n, b"t%d" % n)
    assert len(guard.refused) == REFUSED_BRANCHES
    assert not guard.absorbs_ack(b"b0") and not guard.absorbs_ack(None)
    assert guard.absorbs_ack(b"b%d" % (REFUSED_BRANCHES + 9))
    assert not guard.absorbs_ack(b"b%d" % (REFUSED_BRANCHES + 9))  # once


def test_a_stateless_refusal_copies_what_a_response_must():
    status, extra = b"SIP/2.0 503 Service Unavailable\r\n", b"Retry-After: 1\r\nServer: Twilio\r\n"
    refusal = stateless_refusal(_invite(), "127.0.0.1", 5099, status, extra, b"t-1")
    response = parse_datagram(refusal)
    assert response.status == 503 and response.headers.get("Retry-After") == "1"
    assert [v for v in response.headers.get_all("Via")] == [
        "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-abc", "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-proxy"]
    assert response.headers.get("Call-ID") == "c1@x" and response.headers.get("CSeq") == "1 INVITE"
    assert response.to.tag and response.headers.get("From") == "<sip:alice@x>;tag=f1"
    # rport: the reply names the source it goes to (RFC 3581).
    rport = stateless_refusal(_invite(via="SIP/2.0/UDP 10.1.1.1:5099;rport;branch=z9hG4bK-abc"),
                              "127.0.0.1", 40000, status, extra, b"t-1")
    assert parse_datagram(rport).top_via.received == "127.0.0.1"
    assert parse_datagram(rport).top_via.rport == 40000
    # A reply routed elsewhere than the source is left to the full parse.
    for via in ("SIP/2.0/UDP 10.1.1.1:5099;branch=z9hG4bK-abc",
                "SIP/2.0/UDP 127.0.0.1:5099;maddr=10.2.2.2;branch=z9hG4bK-abc",
                "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-abc, SIP/2.0/UDP b"):
        assert stateless_refusal(_invite(via=via), "127.0.0.1", 5099, status, extra, b"t") is None


def test_a_new_call_that_waited_too_long_on_a_busy_node_is_shed():
    guard = OverloadGuard(lag_limit=0.25, message_rate=1000.0, wait_limit=0.2)
    assert guard.admits_new_call(b"b1", waited=0.9)  # not busy, no queue: the machine was slow
    # A queue that stands (every datagram of a tick waited long) is overload even when the
    # node, starved of CPU, reads less than message_rate; a stall's backlog, or a few
    # datagrams, are not. While it stands new calls are admitted at a rate (the next test).
    guard.tick(lateness=0.0, elapsed=0.05, datagrams=20, least_wait=0.15)
    assert guard.standing and not guard.busy and guard.admission.rate is not None
    assert not guard.admits_new_call(b"s1", waited=0.5)  # past twice the limit: shed anyway
    guard.tick(lateness=0.0, elapsed=0.05, datagrams=3, least_wait=0.5)
    assert not guard.standing
    guard.admission.rate = None  # (no queue for a second: see the next test)
    assert guard.admits_new_call(b"s4", waited=0.3)
    guard.busy = True
    assert guard.admits_new_call(b"b2", waited=0.1)
    assert not guard.admits_new_call(b"b3", waited=0.45)
    assert guard.admits_new_call(b"b2", waited=0.45)  # a retransmission of a call taken
    # The ticks' verdict: for streams (no wait known); a datagram is judged by its wait.
    guard.shedding = True
    assert not guard.admits_new_call(b"b4", waited=None)
    assert guard.admits_new_call(b"b4", waited=0.0)
    assert guard.admits_new_call(b"b1", waited=None)
    guard.shedding = False
    for n in range(TAKEN_BRANCHES + 10):  # the calls remembered are bounded
        guard.admits_new_call(b"n%d" % n, waited=0.0)
    assert len(guard.taken) == TAKEN_BRANCHES and b"b1" not in guard.taken


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["reject", "drop"])
async def test_new_calls_that_waited_are_shed_before_parsing(harness, action, monkeypatch):
    twin = harness.twin
    twin.set_fidelity(twin.fidelity.with_overrides({"overload_action": action}))
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)],
                                       voice_url='twiml:<Response><Pause length="60"/></Response>'))
    node = twin.nodes["us1"]
    flood = Flood(node)
    flood.first_invite(1)  # taken while the node is idle: challenged
    assert flood.statuses(1) == [100, 407]

    parsed: list[bytes] = []
    real_admit = node_module.admit
    monkeypatch.setattr(node_module, "admit", lambda data, *a, **k: (
        parsed.append(data), real_admit(data, *a, **k))[1])
    node.overload.busy = True
    node.endpoint.datagram_wait = 0.5  # as if each datagram had waited half a second
    transactions = len(node.layer)
    flood.first_invite(2)
    flood.first_invite(2)  # its retransmission: judged again, shed again
    assert node.overload.shed_before_parsing == node.overload.shed == 2
    assert not any(b"2@flood" in data for data in parsed)  # never parsed
    assert len(node.layer) == transactions and twin.calls.get("2@flood") is None
    if action == "reject":
        assert flood.statuses(2) == [503, 503]
        refusal = parse_datagram(flood.last(2, 503))
        assert refusal.headers.get("Retry-After") == "1" and refusal.to.tag
        assert refusal.headers.get("CSeq") == "1 INVITE"
        # The retransmission's 503 is the same answer: one To tag (RFC 3261 §8.2.6.2).
        tags = {parse_datagram(r).to.tag for r in flood.replies[b"2@flood"]}
        assert len(tags) == 1
        # Its ACK (the INVITE's branch, RFC 3261 §17.1.1.3) is absorbed from its bytes, once;
        # an ACK of another branch is parsed as any message.
        to = _TO.search(flood.last(2, 503)).group(1).decode()
        assert node.overload.refused
        flood.request("ACK", 2, "1", 1, to)
        assert not any(b"2@flood" in data for data in parsed)
        assert not node.overload.refused
        flood.request("ACK", 2, "1", 1, to)
        flood.request("ACK", 2, "9", 1, to)
        assert sum(b"2@flood" in data for data in parsed) == 2
        assert flood.statuses(2) == [503, 503]  # an ACK is never answered
    else:
        assert flood.statuses(2) == []
        assert not node.overload.refused  # nothing refused: no ACK is awaited
    # A retransmission of an INVITE refused 503 is refused again even when the node has room
    # by then (its caller has been told; taking it would leave a 407 nobody answers); one
    # that was dropped is judged afresh, and taken.
    flood.first_invite(5)
    node.endpoint.datagram_wait = 0.0
    flood.first_invite(5)
    if action == "reject":
        assert flood.statuses(5) == [503, 503]
        assert len({parse_datagram(r).to.tag for r in flood.replies[b"5@flood"]}) == 1
        assert twin.calls.get("5@flood") is None
    else:
        assert flood.statuses(5) == [100, 407]
    node.endpoint.datagram_wait = 0.5
    # Calls under way go on: a retransmitted INVITE of a call taken gets its 407 again, and
    # the call answers its challenge and is answered.
    flood.first_invite(1)
    assert flood.statuses(1)[-1] == 407
    flood.authenticated_invite(1)
    await _until(lambda: 200 in flood.statuses(1))
    flood.ack_and_bye(1)
    assert twin.calls.get("1@flood").status == "completed"
    # Fresh datagrams on a busy node are taken, even while the guard's ticks say overloaded:
    # the wait is the measure for datagrams...
    node.endpoint.datagram_wait = 0.0
    node.overload.shedding = True
    flood.first_invite(3)
    assert flood.statuses(3) == [100, 407]
    # ...unless the kernel kept the receive buffer small (no root, a low rmem_max): then a
    # backlog overflows before it waits, and the ticks decide as for streams.
    monkeypatch.setattr(node.endpoint._udp, "buffer", 200_000)
    flood.first_invite(4)
    assert flood.statuses(4) == ([503] if action == "reject" else [])
