"""All 49 RFC 4475 torture messages, raw over UDP, against a live region node.

A node is a UAS with Twilio's rules on top, so its answers derive from the core's
:data:`tests.sip.torture.EXPECTED` like this:

* "processed normally" (200) becomes {200, 403, 404}: core validation passes, then the Twilio
  rules apply. The corpus addresses example.com hosts, which are no SIP Domain, so an INVITE
  or a REGISTER gets 404 (32002) from the domain lookup, while OPTIONS is answered 200 by the
  edge itself (and 403 is what a domain without authentication would give).
* ``wsinv`` is an INVITE whose To already carries a tag: to a UAS that is a request inside a
  dialog it never created, so 481 (RFC 3261 §12.2.2) is the normal processing.
* ``cparam02`` repeats the top Via (sent-by and branch) and method of ``cparam01``, and
  ``regescrt`` those of ``escnull``: the node's server transaction takes each for a
  retransmission of the earlier request (RFC 3261 §17.2.3) and resends that request's answer
  to where that one came from, so the later message's own address hears nothing new.
* everything else - 400, 415, 416, 420, 501, 505 and silence for responses - is the core's
  answer unchanged.

Each message is sent from its own loopback address bound to port 5060: responses to a
request follow its Via (received = the source address, port = the Via's sent-by port, 5060
throughout the corpus), and a separate address per message keeps one message's
retransmitted answers away from the next one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.ua.client import Auth, SipClient
from tests.sip.torture import EXPECTED, load_manifest
from tests.support import PASSWORD
from tests.support.twin import worker_network

pytestmark = pytest.mark.asyncio

CASES = load_manifest()

# The corpus sends requests whose Request-URI host is no SIP Domain of the twin.
PROCESSED = frozenset({200, 403, 404})
# Messages whose node answer differs from the derivation above, and why.
NODE_OVERRIDES: dict[str, set[int | None]] = {
    "wsinv": {481},  # INVITE with a To tag for no known dialog
    "cparam02": {None},  # a retransmission of cparam01's transaction: answered to cparam01
    "regescrt": {None},  # a retransmission of escnull's transaction: answered to escnull
}
# The earlier message each absorbed one repeats; it must come first.
ABSORBED_BY = {"cparam02": "cparam01", "regescrt": "escnull"}


def node_expected(name: str) -> set[int | None]:
    if name in NODE_OVERRIDES:
        return NODE_OVERRIDES[name]
    expected: set[int | None] = set()
    for status in EXPECTED[name]:
        expected |= PROCESSED if status == 200 else {status}
    return expected


def _source_addresses() -> list[str]:
    """One loopback address per message, high in this worker's /24 (nodes use .1 to .8)."""
    network = ipaddress.ip_network(worker_network())
    return [str(network.network_address + 150 + i) for i in range(len(CASES))]


async def _collect(sock: socket.socket, seconds: float) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 65535), left))
        except TimeoutError:
            break
    return got


def _status(datagram: bytes) -> int:
    first = datagram.split(b"\r\n", 1)[0].split(b" ")
    assert first[0] == b"SIP/2.0", datagram[:80]
    return int(first[1])


async def test_expected_sets_cover_the_whole_corpus() -> None:
    assert len(CASES) == 49 and {c.name for c in CASES} == set(EXPECTED)
    order = [c.name for c in CASES]
    for later, earlier in ABSORBED_BY.items():
        assert order.index(earlier) < order.index(later)


async def test_every_torture_message_gets_its_node_answer_and_the_node_keeps_serving(
    harness, caplog
) -> None:
    caplog.set_level(logging.ERROR, logger="siptwin")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    host, port = harness.node_port("us1")
    sockets: list[socket.socket] = []
    answers: dict[str, list[bytes]] = {}
    try:
        for case, source in zip(CASES, _source_addresses(), strict=True):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((source, 5060))
            sock.setblocking(False)
            sockets.append(sock)
            sock.sendto(case.data, (host, port))
            # First answers come back in microseconds; 0.3 s is well before any retransmission
            # (T1 = 500 ms), so each list holds the answer to this message alone.
            answers[case.name] = await _collect(sock, 0.3)
    finally:
        for sock in sockets:
            sock.close()

    mismatches = {}
    for case in CASES:
        statuses = [_status(d) for d in answers[case.name]]
        got: set[int | None] = set(statuses) if statuses else {None}
        if len(statuses) > 1 or not got <= node_expected(case.name):
            mismatches[case.name] = (statuses, sorted(node_expected(case.name), key=str))
    assert not mismatches, mismatches

    # 501 for an unknown method carries Allow (RFC 3261 §21.5.2).
    assert b"\r\nAllow: " in answers["intmeth"][0]
    # OPTIONS is answered by the edge itself, Max-Forwards 0 or not.
    assert _status(answers["zeromf"][0]) == 200

    # Nothing crashed: no handler error logged, the node still answers and completes a call.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    async with SipClient() as client:
        options = await client.request("OPTIONS", host, port, f"sip:{host}")
    assert options[-1].status == 200
    result = await harness.call("us1", "sip:1000@acme.sip.us1.twilio.com",
                                auth=Auth("alice", PASSWORD))
    assert result.statuses == [100, 407, 100, 180, 200] and result.bye_status == 200


async def test_torture_messages_in_one_burst_leave_the_node_answering(harness, caplog) -> None:
    """The whole corpus at once, from one socket, then an authenticated call."""
    caplog.set_level(logging.ERROR, logger="siptwin")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    host, port = harness.node_port("us1")
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as sock:
        sock.bind((_source_addresses()[0], 0))
        for _ in range(3):
            for case in CASES:
                sock.sendto(case.data, (host, port))
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    result = await harness.call("us1", "sip:1000@acme.sip.us1.twilio.com",
                                auth=Auth("alice", PASSWORD))
    assert result.statuses == [100, 407, 100, 180, 200] and result.bye_status == 200
