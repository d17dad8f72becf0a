"""The asyncio adapters over real loopback sockets: UDP, TCP and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time

import pytest

from siptwin.limits import Limits
from siptwin.sip.message import make_request, parse_datagram, parse_stream_message
from siptwin.sip.routing import Hop, response_hop, stamp_received
from siptwin.transport.endpoint import Destination, EndpointConfig, SipEndpoint, Source
from siptwin.transport.tls import client_context, ensure_certificate, server_context


def options(branch: str, transport: str = "UDP", body: bytes = b"") -> bytes:
    return make_request(
        "OPTIONS",
        "sip:ping@127.0.0.1",
        [
            ("Via", f"SIP/2.0/{transport} 127.0.0.1:5999;branch=z9hG4bK{branch};rport"),
            ("From", "<sip:probe@example.com>;tag=1"),
            ("To", "<sip:ping@127.0.0.1>"),
            ("Call-ID", f"{branch}@probe"),
            ("CSeq", "1 OPTIONS"),
        ],
        body,
    ).to_bytes()


class Recorder:
    def __init__(self) -> None:
        self.received: list[tuple[bytes, Source]] = []
        self.event = asyncio.Event()

    def __call__(self, data: bytes, source: Source) -> None:
        self.received.append((data, source))
        self.event.set()

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async def until() -> None:
            while len(self.received) < count:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(until(), timeout)


@pytest.fixture
async def pair(tmp_path):
    cert, key = ensure_certificate(tmp_path, "node", ["node.test"], ["127.0.0.1"])
    server_rx, client_rx = Recorder(), Recorder()
    server = SipEndpoint(
        EndpointConfig("127.0.0.1", 0, 0, 0, tls_context=server_context(cert, key)), server_rx
    )
    client = SipEndpoint(
        EndpointConfig("127.0.0.1", 0, None, None, tls_client_context=client_context(cert)), client_rx
    )
    await server.start()
    await client.start()
    yield server, server_rx, client, client_rx
    await client.close()
    await server.close()


async def test_udp_message_arrives_with_its_source(pair) -> None:
    server, server_rx, client, _ = pair
    await client.send(options("u1"), Destination("udp", *server.udp_address))
    await server_rx.wait(1)
    data, source = server_rx.received[0]
    assert parse_datagram(data).call_id == "u1@probe"
    assert (source.transport, source.host, source.port) == ("udp", "127.0.0.1", client.udp_address[1])


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_stream_reply_reuses_the_incoming_connection(pair, transport) -> None:
    server, server_rx, client, client_rx = pair
    address = server.tcp_address if transport == "tcp" else server.tls_address
    await client.send(options("s1", transport.upper()), Destination(transport, *address))
    await server_rx.wait(1)
    data, source = server_rx.received[0]
    assert source.transport == transport
    assert server.open_connections == 1
    # The answer goes back over the same connection: the client endpoint receives it.
    await server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", source.reply_to)
    await client_rx.wait(1)
    assert client_rx.received[0][1].transport == transport
    assert server.open_connections == 1 and client.open_connections == 1
    # A second request from the client reuses its connection too.
    await client.send(options("s2", transport.upper()), Destination(transport, *address))
    await server_rx.wait(2)
    assert server.open_connections == 1


async def test_tcp_messages_split_and_coalesced_are_framed(pair) -> None:
    server, server_rx, _, _ = pair
    one, two = options("f1", "TCP", b"abc"), options("f2", "TCP")
    reader, writer = await asyncio.open_connection(*server.tcp_address)
    stream = b"\r\n\r\n" + one + two
    for i in range(0, len(stream), 7):
        writer.write(stream[i : i + 7])
        await writer.drain()
    await server_rx.wait(2)
    assert [parse_stream_message(d).call_id for d, _ in server_rx.received] == ["f1@probe", "f2@probe"]
    assert parse_stream_message(server_rx.received[0][0]).body == b"abc"
    assert await asyncio.wait_for(reader.read(2), 2) == b"\r\n"  # keep-alive pong
    writer.close()


async def test_broken_stream_framing_closes_the_connection(pair) -> None:
    server, server_rx, _, _ = pair
    reader, writer = await asyncio.open_connection(*server.tcp_address)
    writer.write(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nContent-Length: 5\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the server
    assert server_rx.received == []
    writer.close()


async def test_idle_stream_is_closed(tmp_path) -> None:
    rx = Recorder()
    server = SipEndpoint(EndpointConfig("127.0.0.1", None, 0, None, limits=Limits(stream_header_timeout=0.2)), rx)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(*server.tcp_address)
        writer.write(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 9999\r\n\r\nshort body")
        assert await asyncio.wait_for(reader.read(100), 5) == b""
        writer.close()
    finally:
        await server.close()


async def test_address_in_use_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        endpoint = SipEndpoint(EndpointConfig("127.0.0.1", port, None, None), Recorder())
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            await endpoint.start()


async def test_tls_rejects_plaintext_without_harm(pair) -> None:
    server, server_rx, client, client_rx = pair
    reader, writer = await asyncio.open_connection(*server.tls_address)
    writer.write(options("p1"))
    await writer.drain()
    # The handshake fails: the server closes without delivering anything as SIP.
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()
    # The TLS listener keeps serving real TLS clients afterwards.
    await client.send(options("p2", "TLS"), Destination("tls", *server.tls_address))
    await server_rx.wait(1)
    assert parse_stream_message(server_rx.received[0][0]).call_id == "p2@probe"


def test_received_and_rport_are_stamped_and_used_for_the_reply() -> None:
    request = parse_datagram(options("r1"))
    stamp_received(request, "127.0.0.77", 40000)
    via = request.top_via
    assert (via.received, via.rport) == ("127.0.0.77", 40000)
    assert response_hop(request, "udp", "127.0.0.77", 40000) == Hop("udp", "127.0.0.77", 40000)


def test_received_added_only_when_sent_by_differs_without_rport() -> None:
    data = options("r2").replace(b";rport", b"")
    request = parse_datagram(data)
    stamp_received(request, "127.0.0.1", 5999)
    assert request.top_via.received is None
    stamp_received(request, "127.0.0.9", 6000)
    assert request.top_via.received == "127.0.0.9"
    hop = response_hop(request, "udp", "127.0.0.9", 6000)
    assert (hop.host, hop.port) == ("127.0.0.9", 5999)  # no rport: the sent-by port


def test_client_context_verifies_the_twin_certificate(tmp_path) -> None:
    cert, _ = ensure_certificate(tmp_path, "node", ["acme.sip.twilio.com"], ["127.0.0.1"])
    context = client_context(cert)
    assert context.verify_mode == ssl.CERT_REQUIRED


async def test_a_datagram_says_how_long_it_waited_in_the_receive_buffer() -> None:
    """The kernel's receive time comes with each datagram, so a backlog in the socket buffer
    shows (the overload guard sheds new calls by it): a datagram that arrived while the loop
    was busy reports at least that long a wait; the buffer is the size the limit asks for."""
    waits: list[float] = []
    limits = Limits(udp_receive_buffer=1024 * 1024)
    server: SipEndpoint | None = None

    def record(data: bytes, source: Source) -> None:
        assert server is not None
        waits.append(server.datagram_wait)

    server = SipEndpoint(EndpointConfig("127.0.0.1", 0, None, None, limits=limits), record)
    await server.start()
    try:
        assert server._udp is not None and server._udp.sock is not None
        granted = server._udp.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with open("/proc/sys/net/core/rmem_max") as f:
            assert granted >= min(limits.udp_receive_buffer, int(f.read()))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            # Linux turns receive timestamps on for the system a moment after the first
            # socket asks (a deferred static key): until then a datagram is stamped when read.
            # So try a few times; once on, a datagram that waited 0.2 s says so.
            for attempt in range(5):
                sender.sendto(options(f"waited{attempt}"), server.udp_address)
                time.sleep(0.2)  # the loop is busy: the datagram waits in the kernel's buffer
                for _ in range(200):
                    if len(waits) > attempt:
                        break
                    await asyncio.sleep(0.005)
                if waits[-1] >= 0.19:
                    break
        assert waits[-1] >= 0.19, waits
        assert server.datagram_wait == 0.0  # outside a delivery: nothing is waiting
    finally:
        await server.close()


async def test_a_failing_udp_handler_leaves_the_socket_serving() -> None:
    """A handler that raises on one datagram is logged and the next datagrams of the same
    wake-up and of later ones are still delivered (the receive loop calls the handler
    directly, without SipEndpoint._deliver)."""
    seen: list[str] = []

    def handler(data: bytes, source: Source) -> None:
        call_id = parse_datagram(data).call_id
        seen.append(call_id)
        if call_id.startswith("boom"):
            raise RuntimeError("a handler bug")

    server = SipEndpoint(EndpointConfig("127.0.0.1", 0, None, None), handler)
    await server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for branch in ("boom1", "ok1", "boom2", "ok2"):  # one wake-up reads them all
                sender.sendto(options(branch), server.udp_address)
            for _ in range(200):
                if len(seen) == 4:
                    break
                await asyncio.sleep(0.005)
            sender.sendto(options("ok3"), server.udp_address)
            for _ in range(200):
                if len(seen) == 5:
                    break
                await asyncio.sleep(0.005)
        assert seen == ["boom1@probe", "ok1@probe", "boom2@probe", "ok2@probe", "ok3@probe"]
    finally:
        await server.close()


async def test_udp_impairment_applies_to_immediate_sends_and_to_receiving() -> None:
    """send_now's direct path is taken only without impairment: with loss every datagram is
    dropped both ways (and counted), with latency a send leaves that much later."""
    rx = Recorder()
    server = SipEndpoint(EndpointConfig("127.0.0.1", 0, None, None), rx)
    await server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.setblocking(False)
            to_peer = Destination("udp", *peer.getsockname())
            impairment = server.config.impairment

            server.send_now(options("plain"), to_peer)  # unimpaired: straight out
            await asyncio.sleep(0.05)
            assert parse_datagram(peer.recv(65535)).call_id == "plain@probe"

            impairment.loss_percent = 100.0
            server.send_now(options("lost"), to_peer)
            peer.sendto(options("lost-in"), server.udp_address)
            await asyncio.sleep(0.1)
            with pytest.raises(BlockingIOError):
                peer.recv(65535)
            assert rx.received == []
            assert impairment.dropped == 2

            impairment.loss_percent, impairment.latency_ms = 0.0, 150.0
            sent_at = time.monotonic()
            server.send_now(options("late"), to_peer)
            await asyncio.sleep(0.05)
            with pytest.raises(BlockingIOError):
                peer.recv(65535)  # not yet: it leaves 150 ms after the send
            while True:
                try:
                    data = peer.recv(65535)
                    break
                except BlockingIOError:
                    assert time.monotonic() - sent_at < 2.0
                    await asyncio.sleep(0.01)
            assert parse_datagram(data).call_id == "late@probe"
            assert time.monotonic() - sent_at >= 0.14
    finally:
        await server.close()


async def test_replies_to_a_batch_of_datagrams_leave_together_after_it_in_order() -> None:
    """What handlers send while one wake-up's datagrams are read (send_now, send) leaves when
    the batch is done, in the order sent: the peer has nothing while the last datagram is
    handled and then every reply. A send outside a batch leaves at once."""
    server: SipEndpoint | None = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        to_peer = Destination("udp", *peer.getsockname())
        peer_had: list[bool] = []

        def reply(data: bytes, source: Source) -> None:
            assert server is not None
            call_id = parse_datagram(data).call_id
            try:
                peer.recv(65535, socket.MSG_PEEK)
                peer_had.append(True)
            except BlockingIOError:
                peer_had.append(False)
            server.send_now(options(f"{call_id.split('@')[0]}-a"), to_peer)
            server._udp.sendto(options(f"{call_id.split('@')[0]}-b"), peer.getsockname())

        server = SipEndpoint(EndpointConfig("127.0.0.1", 0, None, None), reply)
        await server.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for branch in ("one", "two", "three"):  # queued before the loop reads: a batch
                    sender.sendto(options(branch), server.udp_address)
                for _ in range(200):
                    if len(peer_had) == 3:
                        break
                    await asyncio.sleep(0.005)
            assert peer_had == [False, False, False]  # nothing left during the batch
            await asyncio.sleep(0.05)
            got = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    got.append(parse_datagram(peer.recv(65535)).call_id)
            assert got == ["one-a@probe", "one-b@probe", "two-a@probe", "two-b@probe",
                           "three-a@probe", "three-b@probe"]

            server.send_now(options("alone"), to_peer)  # outside a batch: at once
            assert parse_datagram(peer.recv(65535)).call_id == "alone@probe"
        finally:
            await server.close()


async def test_a_udp_endpoint_closed_by_its_handler_still_sends_what_it_sent_first() -> None:
    """A handler of a batch that sends and then closes the endpoint (a node stopping): the
    datagram sent before the close leaves, once; nothing after it does."""
    server: SipEndpoint | None = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        to_peer = Destination("udp", *peer.getsockname())

        def send_and_close(data: bytes, source: Source) -> None:
            assert server is not None and server._udp is not None
            server.send_now(options("before"), to_peer)
            server._udp.close()
            server.send_now(options("after"), to_peer)

        server = SipEndpoint(EndpointConfig("127.0.0.1", 0, None, None), send_and_close)
        await server.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.sendto(options("stop"), server.udp_address)
            await asyncio.sleep(0.2)
            got = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    got.append(parse_datagram(peer.recv(65535)).call_id)
            assert got == ["before@probe"]
        finally:
            await server.close()
