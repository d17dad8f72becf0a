"""Findings 2 and 6 of issue 15, SIP side: a TCP peer that never reads, and idle connections.

A connection that pipelined requests and never read the replies grew the twin by ~21 MB/s
without limit: every reply was queued in the twin. Now the twin stops reading from a peer
whose replies pile up (above ``stream_write_high_water``) and closes the connection when the
peer still does not read after ``stream_write_stall`` seconds.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.ua.client import Auth
from tests.support import PASSWORD

from .memory import SLACK_BYTES, rss_bytes

pytestmark = pytest.mark.asyncio

HOST = "acme.sip.us1.twilio.com"


def _options(index: int, port: int) -> bytes:
    return (f"OPTIONS sip:{HOST} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKpipe{index}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{index}\r\n"
            f"To: <sip:{HOST}>\r\nCall-ID: pipe-{index}@attacker\r\nCSeq: 1 OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


class NeverReads(threading.Thread):
    """Pipelines OPTIONS on one TCP connection for ``seconds`` and never reads a reply."""

    def __init__(self, address: tuple[str, int], seconds: float) -> None:
        super().__init__(daemon=True)
        self.address, self.seconds = address, seconds
        self.sent = 0
        self.lasted = 0.0
        self.closed_by_peer = False

    def run(self) -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(self.address)
            sock.settimeout(0.5)
            port = sock.getsockname()[1]
            batch = b"".join(_options(i, port) for i in range(100))
            began = time.monotonic()
            deadline = began + self.seconds
            while time.monotonic() < deadline:
                self.lasted = time.monotonic() - began
                try:
                    sock.sendall(batch)
                    self.sent += 100
                except TimeoutError:
                    continue  # the twin stopped reading: our own buffers are full
                except OSError:
                    self.closed_by_peer = True
                    return


async def test_a_peer_that_never_reads_is_paused_then_closed(limited_twin) -> None:
    harness = await limited_twin(stream_write_stall=2.0)
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    before = rss_bytes()
    # Until the twin closes the connection (seconds, unloaded), or 30 s.
    attacker = NeverReads(harness.node_port("us1", "tcp"), seconds=30)
    attacker.start()
    peak = before
    while attacker.is_alive():
        await asyncio.sleep(0.2)
        peak = max(peak, rss_bytes())
    after = rss_bytes()
    growth_mb = (peak - before) / 2**20
    print(f"{attacker.sent} pipelined requests in {attacker.lasted:.1f} s: peak RSS "
          f"{growth_mb:+.1f} MB, after {(after - before) / 2**20:+.1f} MB")
    assert peak - before < SLACK_BYTES, f"grew {growth_mb:.0f} MB during the attack"
    assert after - before < SLACK_BYTES
    assert attacker.closed_by_peer, f"the twin kept the connection ({attacker.sent} requests sent)"
    call = await harness.call("us1", f"sip:1000@{HOST}", transport="tcp",
                              auth=Auth("alice", PASSWORD), hang_up=True)
    assert call.statuses[-1] == 200, call.statuses


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65536), seconds) == b""
    except (TimeoutError, ConnectionError):
        return False


async def _drain_replies(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def test_silent_tls_handshake_and_idle_connections_are_closed(limited_twin) -> None:
    harness = await limited_twin(tls_handshake_timeout=1.0, stream_header_timeout=1.0,
                                 stream_idle_timeout=2.5)
    loop = asyncio.get_running_loop()
    # A TCP connection to the TLS port that never starts its handshake.
    reader, writer = await asyncio.open_connection(*harness.node_port("us1", "tls"))
    began = loop.time()
    assert await _closed_within(reader, 5)
    assert loop.time() - began < 3
    writer.close()
    # A connection that sends one whole message: the header timeout no longer applies, the
    # idle timeout does.
    reader, writer = await asyncio.open_connection(*harness.node_port("us1", "tcp"))
    writer.write(_options(1, writer.get_extra_info("sockname")[1]))
    assert (await _drain_replies(reader)).startswith(b"SIP/2.0 200")
    began = loop.time()
    assert await _closed_within(reader, 6)
    assert 2.0 < loop.time() - began < 4.5
    writer.close()


async def test_connections_are_capped_per_source(limited_twin) -> None:
    harness = await limited_twin(max_connections_per_source=3)
    address = harness.node_port("us1", "tcp")
    held = [await asyncio.open_connection(*address, local_addr=("127.0.0.1", 0)) for _ in range(3)]
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection(*address, local_addr=("127.0.0.1", 0))
    assert await _closed_within(reader, 2), "a fourth connection from one source was kept"
    writer.close()
    # Another source address still gets in, and so does this one once it lets one go.
    other = harness.twin.nodes["us1"].region.address.rsplit(".", 1)[0] + ".250"
    reader, writer = await asyncio.open_connection(*address, local_addr=(other, 0))
    writer.write(_options(2, writer.get_extra_info("sockname")[1]))
    assert (await _drain_replies(reader)).startswith(b"SIP/2.0 200")
    writer.close()
    held[0][1].close()
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection(*address, local_addr=("127.0.0.1", 0))
    writer.write(_options(3, writer.get_extra_info("sockname")[1]))
    assert (await _drain_replies(reader)).startswith(b"SIP/2.0 200")
    writer.close()
    for _, w in held[1:]:
        w.close()


async def test_api_connection_dribbling_its_header_is_closed(limited_twin) -> None:
    harness = await limited_twin(http_idle_timeout=1.0)
    host, port = harness.twin.api_url.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /2010-04-01/Accounts.json HTTP/1.1\r\nHost: x\r\n")  # never finished
    began = loop.time()
    for _ in range(4):
        await asyncio.sleep(0.3)
        if writer.is_closing():
            break
        writer.write(b"X-Slow: 1\r\n")
    assert await _closed_within(reader, 5)
    assert loop.time() - began < 3
    writer.close()
