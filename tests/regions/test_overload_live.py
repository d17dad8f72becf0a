"""Overload: a node that receives more than it can answer sheds new calls early and cheaply,
and the calls already under way complete (issue 18).

The flood is synthetic and in-process: the datagrams of SIPp's authenticated flow fed straight
into the us1 node's receive entry point in one burst, so the event loop runs late for as long
as the burst takes. The thresholds are set low so any machine's burst crosses them; the
decision itself (late *and* busy) is unit-tested with made-up ticks below.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions.overload import OverloadGuard
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

    def __init__(self, node) -> None:
        self.node = node
        self.source = Source("udp", "127.0.0.1", 5099, node.region.address, 5060)
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
    flood = Flood(node)

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
