"""Finding 1 of issue 15: octets that are not UTF-8 in a header.

An INVITE whose Call-ID was not UTF-8, to a domain with a credential list, raised in the
digest step: the caller heard only 100 Trying and the server transaction stayed in the node's
table for good (three 15 s floods took a twin from 48 to 480 MB). Now such a request is a 400
naming the header, answered before any stage reads it, and any exception a stage raises is a
500 (12400) that ends its transaction.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions import pipeline
from siptwin.ua.client import Auth
from tests.support import PASSWORD

from .memory import SLACK_BYTES, rss_bytes

pytestmark = pytest.mark.asyncio

HOST = "acme.sip.us1.twilio.com"


def _invite(call_id: bytes, port: int, extra: bytes = b"", method: bytes = b"INVITE") -> bytes:
    return (
        method + b" sip:1000@" + HOST.encode() + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:" + str(port).encode() + b";branch=z9hG4bK" + call_id.hex().encode() + b";rport\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:alice@" + HOST.encode() + b">;tag=9fx\r\n"
        b"To: <sip:1000@" + HOST.encode() + b">\r\nCall-ID: " + call_id + b"\r\n"
        b"CSeq: 1 " + method + b"\r\nContact: <sip:alice@127.0.0.1:" + str(port).encode() + b">\r\n"
        + extra + b"Content-Length: 0\r\n\r\n")


async def _flood(node: tuple[str, int], messages: list[bytes]) -> list[bytes]:
    """Send each message from one socket, in small batches read back as they go (neither
    socket buffer overflows on lo); every reply until 2 s of quiet."""
    replies: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        port = str(sock.getsockname()[1]).encode()

        async def read(quiet: float) -> None:
            deadline = loop.time() + quiet
            while loop.time() < deadline:
                try:
                    replies.append(sock.recv(65536))
                    deadline = loop.time() + quiet
                except BlockingIOError:
                    await asyncio.sleep(0.005)

        for index, message in enumerate(messages):
            sock.sendto(message.replace(b"{port}", port), node)
            if index % 20 == 19:
                await read(0.01)
        await read(2.0)
    return replies


async def _provision(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))


async def test_undecodable_call_id_is_a_400_and_leaves_no_transaction(harness) -> None:
    await _provision(harness)
    node = harness.twin.nodes["us1"]
    address = harness.node_port("us1")
    before = rss_bytes()
    count = 3000
    for method in (b"INVITE", b"REGISTER"):
        messages = [_invite(b"c%d\xff\xfe\xc3(@attacker" % i, 0, method=method)
                    .replace(b"127.0.0.1:0", b"127.0.0.1:{port}") for i in range(count)]
        replies = await _flood(address, messages)
        finals = [r for r in replies if r.startswith(b"SIP/2.0 400 Header Call-ID is not valid UTF-8")]
        assert len(finals) == count, (method, len(finals), {r[:40] for r in replies})
        # The 400 copies the Call-ID exactly as received, so the sender can match it.
        assert b"Call-ID: c0\xff\xfe\xc3(@attacker\r\n" in finals[0]
    assert len(node.layer) == 0, f"{len(node.layer)} transactions left behind"
    growth = rss_bytes() - before
    print(f"6,000 undecodable requests: RSS {growth / 2**20:+.1f} MB")
    assert growth < SLACK_BYTES
    await _still_serving(harness)


async def test_undecodable_x_header_on_an_accepted_call_is_a_400(harness) -> None:
    await _provision(harness)
    address = harness.node_port("us1")
    message = _invite(b"xhdr-1@attacker", 0, extra=b"X-Customer: caf\xe9\r\n").replace(
        b"127.0.0.1:0", b"127.0.0.1:{port}")
    replies = await _flood(address, [message])
    assert [r.split(b"\r\n", 1)[0] for r in replies] == [
        b"SIP/2.0 400 Header X-Customer is not valid UTF-8"]


async def test_a_failing_stage_answers_500_and_frees_its_transaction(harness, monkeypatch) -> None:
    await _provision(harness)
    node = harness.twin.nodes["us1"]

    def broken_stage(ctx):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(pipeline, "STAGES", (*pipeline.STAGES[:2], broken_stage))
    call = await harness.call("us1", f"sip:1000@{HOST}", transport="tcp",
                              auth=Auth("alice", PASSWORD))
    assert call.statuses[-1] == 500, call.statuses
    assert call.header("X-Twilio-Error") == "12400 Internal failure"
    record = harness.twin.calls.get(call.call_id)
    assert record is not None and record.status == "failed"
    # Over TCP the ACK of the 500 ends the transaction at once (Timer I is 0 on streams).
    for _ in range(50):
        if len(node.layer) == 0:
            break
        await asyncio.sleep(0.1)
    assert len(node.layer) == 0
    monkeypatch.undo()
    await _still_serving(harness)


async def _still_serving(harness) -> None:
    call = await harness.call("us1", f"sip:1000@{HOST}", auth=Auth("alice", PASSWORD), hang_up=True)
    assert call.statuses[-1] == 200, call.statuses
