"""Finding 9 of issue 15, SIP side: a message over the size limit gets 513 Message Too Large
(RFC 3261 §21.5.14) whenever its header lines can still be read, over UDP and over TCP,
instead of being dropped (UDP) or closing the connection without a word (TCP).

At the default limit (65,535 bytes) a UDP datagram cannot exceed it (the kernel delivers at
most 65,507), so the UDP case lowers ``max_message_size``.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD

pytestmark = pytest.mark.asyncio

HOST = "acme.sip.us1.twilio.com"


def _invite(transport: str, port: int, *, pad: int = 0, body: int = 0) -> bytes:
    sdp = b"v=0\r\n" + b"a=x:" + b"y" * max(body - 10, 0) + b"\r\n" if body else b""
    return (f"INVITE sip:1000@{HOST} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bKbig{pad}x{body};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=big\r\n"
            f"To: <sip:1000@{HOST}>\r\nCall-ID: big-{pad}-{body}@attacker\r\nCSeq: 1 INVITE\r\n"
            + (f"X-Pad: {'a' * pad}\r\n" if pad else "")
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(sdp)}\r\n\r\n").encode() + sdp


def _status_line(reply: bytes) -> bytes:
    return reply.split(b"\r\n", 1)[0]


async def test_udp_datagram_over_the_limit_gets_513(limited_twin) -> None:
    harness = await limited_twin(max_message_size=8000)
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    address = harness.node_port("us1")
    for what in ({"pad": 10000}, {"body": 10000}):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(3)
            sock.sendto(_invite("UDP", sock.getsockname()[1], **what), address)
            reply = await asyncio.to_thread(sock.recv, 65536)
        assert _status_line(reply) == b"SIP/2.0 513 Message Too Large", (what, reply[:200])
        assert b"Call-ID: big-" in reply


async def test_tcp_message_over_the_default_limit_gets_513_then_close(limited_twin) -> None:
    harness = await limited_twin()
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    for what in ({"pad": 70000}, {"body": 70000}):
        reader, writer = await asyncio.open_connection(*harness.node_port("us1", "tcp"))
        writer.write(_invite("TCP", writer.get_extra_info("sockname")[1], **what))
        received = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 5):
                received += chunk
        except ConnectionResetError:
            pass
        writer.close()
        assert _status_line(received) == b"SIP/2.0 513 Message Too Large", (what, received[:200])


async def test_near_64_kb_udp_message_is_still_processed(limited_twin) -> None:
    harness = await limited_twin()
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3)
        sock.sendto(_invite("UDP", sock.getsockname()[1], pad=65000), harness.node_port("us1"))
        replies = [await asyncio.to_thread(sock.recv, 65536) for _ in range(2)]
    assert [_status_line(r) for r in replies][-1].startswith(b"SIP/2.0 407"), replies
