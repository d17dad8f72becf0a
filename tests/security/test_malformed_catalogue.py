"""The malformed-SIP catalogue over UDP, TCP and TLS, then a liveness and a memory check
(issue 15's standing attack suite).

Every message of tests/security/malformed.py (the RFC 4475 corpus and the harness's own
broken messages) goes to a region node over each transport, several rounds over. Nothing may
make the node fail a request (no 500: that is the exception path), an authenticated call over
each transport is still answered 200 afterwards, no transaction is left behind once the
timers have run, and the process's memory ends within 20 MB of its level after a warm-up
round.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import Counter

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.ua.client import Auth
from tests.support import PASSWORD

from .malformed import broken_messages, rfc4475_corpus
from .memory import SLACK_BYTES, rss_bytes

pytestmark = pytest.mark.asyncio

REGION = "de1"
HOST = f"acme.sip.{REGION}.twilio.com"
ROUNDS = 4  # after one warm-up round
PARALLEL = 16  # stream connections open at once (the per-source cap is 128)


def _status(reply: bytes) -> str:
    first = reply.split(b"\r\n", 1)[0]
    return first[8:11].decode(errors="replace") if first.startswith(b"SIP/2.0 ") else "other"


async def _over_udp(node: tuple[str, int], messages: list[bytes]) -> list[bytes]:
    """One socket per message (so each reply is matched to nothing else); replies until quiet."""
    loop = asyncio.get_running_loop()
    sockets = []
    for message in messages:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        if message:
            sock.sendto(message, node)
        else:
            sock.sendto(b"", node)
        sockets.append(sock)
        await asyncio.sleep(0)
    replies: list[bytes] = []
    deadline = loop.time() + 1.0
    while loop.time() < deadline:
        got = False
        for sock in sockets:
            try:
                replies.append(sock.recv(65536))
                got = True
            except BlockingIOError:
                pass
        await asyncio.sleep(0.01 if not got else 0)
    for sock in sockets:
        sock.close()
    return replies


async def _over_stream(node: tuple[str, int], messages: list[bytes],
                       tls: ssl.SSLContext | None) -> list[bytes]:
    """One connection per message, PARALLEL at a time: send, read what comes within 0.5 s."""
    gate = asyncio.Semaphore(PARALLEL)
    replies: list[bytes] = []

    async def one(message: bytes) -> None:
        async with gate:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*node, ssl=tls, server_hostname=HOST if tls else None), 10)
            try:
                writer.write(message)
                await writer.drain()
                data = b""
                try:
                    while chunk := await asyncio.wait_for(reader.read(65536), 0.5):
                        data += chunk
                except (TimeoutError, ConnectionError, ssl.SSLError):
                    pass
                replies.extend(b"SIP/2.0 " + part for part in data.split(b"SIP/2.0 ")[1:])
            finally:
                writer.close()
                with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError):
                    await asyncio.wait_for(writer.wait_closed(), 2)

    await asyncio.gather(*(one(message) for message in messages))
    return replies


async def _still_serving(harness) -> None:
    for transport in ("udp", "tcp", "tls"):
        call = await harness.call(REGION, f"sip:1000@{HOST};transport={transport}",
                                  transport=transport, auth=Auth("alice", PASSWORD))
        assert call.statuses[-1] == 200 and call.established, (transport, call.statuses)


async def test_malformed_catalogue_over_udp_tcp_tls_leaves_the_node_live_and_bounded(
        harness) -> None:
    await harness.provision(DomainPlan("acme", voice_url='twiml:<Response><Hangup/></Response>',
                                       credentials=[("alice", PASSWORD)]))
    twin = harness.twin
    node = twin.nodes[REGION]
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    corpus = rfc4475_corpus()
    assert len(corpus) >= 40
    catalogue = {
        "udp": [*corpus.values(), *broken_messages(HOST, "127.0.0.1").values()],
        "tcp": [*corpus.values(), *broken_messages(HOST, "127.0.0.1", stream=True).values()],
    }
    catalogue["tls"] = catalogue["tcp"]
    statuses: dict[str, Counter] = {t: Counter() for t in catalogue}

    async def one_round() -> None:
        for transport, messages in catalogue.items():
            address = harness.node_port(REGION, transport)
            if transport == "udp":
                replies = await _over_udp(address, messages)
            else:
                replies = await _over_stream(address, messages, tls if transport == "tls" else None)
            statuses[transport].update(_status(reply) for reply in replies)

    await one_round()  # warm-up: first TLS contexts, parser caches, the call table
    await _still_serving(harness)
    began, before, peak = time.monotonic(), rss_bytes(), 0
    for _ in range(ROUNDS):
        await one_round()
        peak = max(peak, rss_bytes())
    await _still_serving(harness)
    after = rss_bytes()
    tries = (ROUNDS + 1) * sum(map(len, catalogue.values()))
    server_errors = sum(counter["500"] for counter in statuses.values())
    print(f"\nmalformed catalogue: {tries} messages ({len(corpus)} RFC 4475 + the harness's), "
          f"{ROUNDS} measured rounds in {time.monotonic() - began:.0f} s; answers "
          + "; ".join(f"{t}: {dict(c)}" for t, c in statuses.items())
          + f"; RSS before {before / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB, after "
          f"{after / 2**20:.0f} MB ({(after - before) / 2**20:+.1f} MB)")
    assert server_errors == 0, statuses
    assert all(statuses[t]["400"] > 0 for t in catalogue), statuses  # it really parsed them
    assert after - before < SLACK_BYTES
    # Every transaction the catalogue opened ends on its timers (Timer J/H: 32 s at most
    # over UDP, at once over streams): none is kept for good.
    deadline = time.monotonic() + 40
    while len(node.layer) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert len(node.layer) == 0, f"{len(node.layer)} transactions left behind"
