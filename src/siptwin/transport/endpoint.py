"""asyncio adapters that move SIP octets between sockets and the sans-IO core.

One :class:`SipEndpoint` owns the UDP socket, the TCP listener and the TLS listener of one
address, plus the stream connections opened to or from it. It knows nothing about SIP beyond
framing: complete messages are handed to the ``on_message`` callback with their
:class:`Source`, and :meth:`SipEndpoint.send` delivers octets to a :class:`Destination`,
reusing an open connection to that peer when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..sip.errors import SipParseError
from ..sip.message import DEFAULT_MAX_MESSAGE_SIZE, StreamFramer
from ..sip.routing import Hop

log = logging.getLogger("siptwin.transport")

STREAM_TRANSPORTS = ("tcp", "tls")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from and on which of our sockets it arrived."""

    transport: str  # "udp", "tcp" or "tls"
    host: str
    port: int
    local_host: str
    local_port: int

    @property
    def reply_to(self) -> Destination:
        return Destination(self.transport, self.host, self.port)


# The core's Hop (transport, host, port) is exactly what a send needs.
Destination = Hop


MessageHandler = Callable[[bytes, Source], None]
# Told when something that is not SIP arrives on a stream: ("tls-on-plain-port", source).
TransportEventHandler = Callable[[str, Source], None]

# A TLS record header: handshake (22), version 3.x. A ClientHello sent to a plain SIP port.
_TLS_HANDSHAKE = (0x16, 0x03)


@dataclass
class Impairment:
    """Latency and loss on this endpoint's UDP traffic, both directions.

    The kernel here has no netem, so a region's network profile (a realistic RTT from the
    caller's location, a lossy path, a blackhole) is applied where the datagrams enter and
    leave siptwin. Latency is one-way and added in each direction (so the round trip grows by
    twice it); loss drops datagrams in both directions independently. Streams are not
    impaired: TCP would hide loss by retransmitting.
    """

    latency_ms: float = 0.0
    loss_percent: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    dropped: int = 0

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.loss_percent > 0

    def drops(self) -> bool:
        if self.loss_percent > 0 and self.rng.random() * 100 < self.loss_percent:
            self.dropped += 1
            return True
        return False


@dataclass
class EndpointConfig:
    host: str
    udp_port: int | None = 5060
    tcp_port: int | None = 5060
    tls_port: int | None = 5061
    tls_context: ssl.SSLContext | None = None  # server side; None disables TLS
    tls_client_context: ssl.SSLContext | None = None  # for outbound TLS connections
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    # A stream connection with no traffic for this long is closed; it also bounds how long a
    # peer may leave a message half sent (RFC 4475 clerr over TCP).
    idle_timeout: float = 300.0
    impairment: Impairment = field(default_factory=Impairment)
    # Several processes on the same address and ports (worker processes): the kernel spreads
    # datagrams by source address and port, connections by connection.
    reuse_port: bool = False


@dataclass
class _Connection:
    transport: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    remote: tuple[str, int]
    local: tuple[str, int]
    framer: StreamFramer = field(default_factory=StreamFramer)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        impairment = self.endpoint.config.impairment
        if impairment.drops():
            return
        if data.strip(b"\r\n") == b"":
            return  # keep-alive (RFC 5626 §4.4.1 CRLF ping on UDP is not used; ignore noise)
        source = Source("udp", addr[0], addr[1], *self.endpoint.udp_address)
        if impairment.latency_ms > 0:
            asyncio.get_running_loop().call_later(impairment.latency_ms / 1000,
                                                  self.endpoint._deliver, data, source)
        else:
            self.endpoint._deliver(data, source)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error on %s: %s", self.endpoint.config.host, exc)


class SipEndpoint:
    def __init__(self, config: EndpointConfig, on_message: MessageHandler,
                 on_transport_event: TransportEventHandler | None = None) -> None:
        self.config = config
        self.on_message = on_message
        self.on_transport_event = on_transport_event
        self._udp: _UdpProtocol | None = None
        self._servers: list[Any] = []  # asyncio or uvloop Server objects
        self._connections: dict[tuple[str, str, int], _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.udp_address: tuple[str, int] = (config.host, 0)
        self.tcp_address: tuple[str, int] | None = None
        self.tls_address: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            if cfg.udp_port is not None:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(cfg.host, cfg.udp_port),
                    reuse_port=cfg.reuse_port or None)
                self._udp = protocol
                self.udp_address = transport.get_extra_info("sockname")[:2]
            if cfg.tcp_port is not None:
                server = await asyncio.start_server(
                    self._accept("tcp"), cfg.host, cfg.tcp_port, reuse_address=True,
                    reuse_port=cfg.reuse_port or None)
                self._servers.append(server)
                self.tcp_address = server.sockets[0].getsockname()[:2]
            if cfg.tls_port is not None and cfg.tls_context is not None:
                server = await asyncio.start_server(
                    self._accept("tls"), cfg.host, cfg.tls_port, ssl=cfg.tls_context,
                    reuse_address=True, reuse_port=cfg.reuse_port or None)
                self._servers.append(server)
                self.tls_address = server.sockets[0].getsockname()[:2]
        except OSError as err:
            await self.close()
            raise OSError(err.errno, f"cannot listen on {cfg.host}: {err.strerror}") from err

    async def close(self) -> None:
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        for server in self._servers:
            server.close()
        for conn in list(self._connections.values()):
            conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self._connections.clear()

    # ------------------------------------------------------------------ receiving
    def _deliver(self, data: bytes, source: Source) -> None:
        try:
            self.on_message(data, source)
        except Exception:  # a handler bug must not kill the listener
            log.exception("message handler failed for %s from %s", source.transport, source.host)

    def _accept(self, transport: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            remote = writer.get_extra_info("peername")[:2]
            local = writer.get_extra_info("sockname")[:2]
            conn = _Connection(transport, reader, writer, remote, local,
                               StreamFramer(self.config.max_message_size))
            await self._serve(conn)

        return handle

    async def _serve(self, conn: _Connection) -> None:
        key = (conn.transport, conn.remote[0], conn.remote[1])
        self._connections[key] = conn
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(conn.reader.read(65536), self.config.idle_timeout)
                except (TimeoutError, ConnectionError, ssl.SSLError):
                    break
                if not data:
                    break
                if (conn.transport == "tcp" and conn.framer.buffered == 0 and len(data) >= 2
                        and (data[0], data[1]) == _TLS_HANDSHAKE):
                    # The peer speaks TLS to the plain port: nothing SIP will follow.
                    log.info("TLS handshake from %s:%s on plain TCP port %s", *conn.remote,
                             conn.local[1])
                    if self.on_transport_event is not None:
                        self.on_transport_event("tls-on-plain-port",
                                                Source(conn.transport, *conn.remote, *conn.local))
                    break
                conn.framer.feed(data)
                try:
                    while (message := conn.framer.next_message()) is not None:
                        self._deliver(message, Source(conn.transport, *conn.remote, *conn.local))
                except SipParseError as err:
                    # The stream's framing is lost: nothing after this point can be trusted.
                    log.info("closing %s connection from %s: %s", conn.transport, conn.remote[0], err.reason)
                    break
                if conn.framer.keepalives:
                    conn.framer.keepalives = 0
                    conn.writer.write(b"\r\n")  # RFC 5626 §4.4.1 pong
        finally:
            if self._connections.get(key) is conn:
                del self._connections[key]
            conn.writer.close()
            if task is not None:
                self._tasks.discard(task)

    # ------------------------------------------------------------------ sending
    async def send(self, data: bytes, destination: Destination) -> None:
        """Send octets; stream transports reuse a live connection to the peer or open one."""
        if destination.transport == "udp":
            if self._udp is None or self._udp.transport is None:
                raise OSError("UDP is not enabled on this endpoint")
            self._send_datagram(data, destination)
            return
        conn = self._connections.get((destination.transport, destination.host, destination.port))
        if conn is None or conn.writer.is_closing():
            conn = await self._connect(destination)
        conn.writer.write(data)
        await conn.writer.drain()

    def send_now(self, data: bytes, destination: Destination) -> None:
        """Fire-and-forget variant for callers that are not coroutines (UDP is immediate)."""
        if destination.transport == "udp" and self._udp is not None and self._udp.transport:
            self._send_datagram(data, destination)
            return
        task = asyncio.get_running_loop().create_task(self._send_logged(data, destination))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_datagram(self, data: bytes, destination: Destination) -> None:
        impairment = self.config.impairment
        if impairment.drops():
            return
        assert self._udp is not None and self._udp.transport is not None
        address = (destination.host, destination.port)
        if impairment.latency_ms > 0:
            asyncio.get_running_loop().call_later(
                impairment.latency_ms / 1000, self._udp.transport.sendto, data, address)
        else:
            self._udp.transport.sendto(data, address)

    async def _send_logged(self, data: bytes, destination: Destination) -> None:
        try:
            await self.send(data, destination)
        except OSError as err:
            log.info("send to %s:%s over %s failed: %s", destination.host, destination.port,
                     destination.transport, err)

    async def _connect(self, destination: Destination) -> _Connection:
        ssl_context = None
        if destination.transport == "tls":
            ssl_context = self.config.tls_client_context or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(
            destination.host, destination.port, ssl=ssl_context,
            local_addr=(self.config.host, 0),
        )
        conn = _Connection(destination.transport, reader, writer,
                           writer.get_extra_info("peername")[:2],
                           writer.get_extra_info("sockname")[:2],
                           StreamFramer(self.config.max_message_size))
        task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._tasks.add(task)
        await asyncio.sleep(0)  # let _serve register the connection before we write
        return conn

    @property
    def open_connections(self) -> int:
        return len(self._connections)
