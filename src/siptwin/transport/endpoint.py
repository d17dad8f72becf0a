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
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..limits import Limits
from ..sip.admission import refusal
from ..sip.errors import SipParseError
from ..sip.frozen import quicken
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


quicken(Source)  # (one a datagram)


# The core's Hop (transport, host, port) is exactly what a send needs.
Destination = Hop


MessageHandler = Callable[[bytes, Source], None]
# Told when something that is not SIP arrives on a stream, with a detail:
# ("tls-on-plain-port", source, ""), ("tls-handshake-failed", source, "the TLS error").
TransportEventHandler = Callable[[str, Source, str], None]

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


class ConnectionBudget:
    """Open SIP connections of one process, in total and per source address.

    Shared by every endpoint of the process, so a flood on one region's address cannot take
    the descriptors the others (and the REST API) need."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.cap = self.limits.connection_cap()
        self.total = 0
        self.by_source: dict[str, int] = {}
        self.refused = 0

    def take(self, host: str) -> bool:
        held = self.by_source.get(host, 0)
        if self.total >= self.cap or held >= self.limits.max_connections_per_source:
            self.refused += 1
            return False
        self.total += 1
        self.by_source[host] = held + 1
        return True

    def give_back(self, host: str) -> None:
        self.total -= 1
        held = self.by_source.get(host, 0) - 1
        if held > 0:
            self.by_source[host] = held
        else:
            self.by_source.pop(host, None)


@dataclass
class EndpointConfig:
    host: str
    udp_port: int | None = 5060
    tcp_port: int | None = 5060
    tls_port: int | None = 5061
    tls_context: ssl.SSLContext | None = None  # server side; None disables TLS
    # Called right before each accepted TLS handshake: the context may load renewed files
    # there, so a certificate written before the connection is the one it is shown.
    tls_refresh: Callable[[], None] | None = None
    tls_client_context: ssl.SSLContext | None = None  # for outbound TLS connections
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    # Timeouts and bounds of stream connections (docs/security.md); None: Limits() defaults.
    limits: Limits | None = None
    # Shared by the endpoints of one process; None: one of this endpoint's own.
    budget: ConnectionBudget | None = None
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
    accepted: bool = False  # the peer connected to us (its first message is awaited)
    messages: int = 0


# Linux socket options Python does not name: the kernel's receive time of each datagram
# (struct timeval ancillary data), and a receive buffer above net.core.rmem_max (root only).
_SO_TIMESTAMP = 29
_SO_RCVBUFFORCE = 33
_TIMEVAL = struct.Struct("@ll")
_LARGEST_DATAGRAM = 65535
# Every UDP socket of a thread receives into the same buffer: a datagram is copied out of it
# before the next is read, and one event loop reads one socket at a time (eight regions
# would otherwise keep eight 64 KiB buffers). Per thread: a test process may run a twin's
# loop in each of several threads.
_receive_buffers = threading.local()


def _receive_buffer() -> memoryview:
    view: memoryview | None = getattr(_receive_buffers, "view", None)
    if view is None:
        view = _receive_buffers.view = memoryview(bytearray(_LARGEST_DATAGRAM))
    return view


# Peer addresses whose Source the UDP socket keeps (cleared when full). A PBX sends from one
# or a few; a caller with a port per call (SIPp -t un, a fleet) would otherwise keep
# thousands alive, each one more object for every young collection to walk.
SOURCES_KEPT = 256


class _UdpSocket:
    """The endpoint's UDP socket, read straight from the event loop's selector.

    Each datagram comes with the time the kernel queued it, so the node can tell how long it
    waited in the receive buffer: under overload the backlog builds there, out of sight of
    the event loop (the loop reads one batch, runs its timers, reads the next, and keeps
    time). The buffer is made large (``udp_receive_buffer``) so that a burst waits rather
    than being dropped by the kernel at random - an ACK or BYE lost there costs a
    retransmission ladder - and the node sheds by the wait instead (regions/overload.py).

    What the handlers send while a batch is read waits in ``outbox`` and leaves, in order,
    when the batch is done: a datagram to a peer asleep on another core wakes it, which on
    this project's VM costs the sender about 15 us when each datagram wakes the peer alone
    and 5-6 us a datagram in bursts of eight (the peer is still awake for the rest), where a
    call sends six. A lone message is still answered at once (its batch is one datagram);
    a reply waits for its batch at most. Other sends (timers, tasks) leave at once. A
    datagram that does not fit the send buffer is lost, as on the network."""

    RECEIVE_BATCH = 64  # datagrams per wake-up at most, so timers and streams get their turn

    def __init__(self, endpoint: SipEndpoint, sock: socket.socket) -> None:
        self.endpoint = endpoint
        self.sock: socket.socket | None = sock
        self.address: tuple[str, int] = sock.getsockname()[:2]
        # What the kernel granted (it doubles the request; without root it stops at
        # net.core.rmem_max): counted in the same units as the request, halved.
        self.buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        self.view = _receive_buffer()
        self.buffers = [self.view]
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)
        # One Source per peer address (it is immutable): a PBX sends from one or a few.
        self._sources: dict[tuple[str, int], Source] = {}
        # The datagrams to send once the batch being read is handled (None between batches).
        self.outbox: list[tuple[bytes, tuple[str, int]]] | None = None

    def _readable(self) -> None:
        self.outbox = outbox = []
        try:
            self._read_batch()
        finally:
            self.outbox = None
            if outbox:
                self._send_all(outbox)

    def _read_batch(self) -> None:
        endpoint = self.endpoint
        impairment = endpoint.config.impairment
        impaired = impairment.active  # settings change between wake-ups, not within one
        address = self.address
        sources = self._sources
        on_message = endpoint.on_message
        for _ in range(self.RECEIVE_BATCH):
            sock = self.sock
            if sock is None:
                return
            try:
                # The whole datagram, whatever the size limit: admission answers one over it
                # 513, which it can only do if it sees that it is over. (Into one buffer:
                # a 64 KiB bytes object per datagram costs more than the copy out of it.)
                size, ancillary, _, addr = sock.recvmsg_into(self.buffers, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # e.g. an ICMP error queued on the socket
                log.debug("udp error on %s: %s", endpoint.config.host, err)
                return
            if impaired and impairment.drops():
                continue
            data = self.view[:size].tobytes()
            if data[:1] in b"\r\n" and not data.strip(b"\r\n"):
                continue  # keep-alive (RFC 5626 §4.4.1 CRLF ping on UDP is not used; ignore)
            source = sources.get(addr)
            if source is None:
                if len(sources) >= SOURCES_KEPT:
                    sources.clear()
                source = sources[addr] = Source("udp", addr[0], addr[1], *address)
            if impaired and impairment.latency_ms > 0:
                self.loop.call_later(impairment.latency_ms / 1000, endpoint._deliver, data,
                                     source)
                continue
            for level, kind, value in ancillary:
                if kind == _SO_TIMESTAMP and level == socket.SOL_SOCKET:
                    seconds, micros = _TIMEVAL.unpack_from(value)
                    wait = endpoint.datagram_wait = max(0.0, time.time() - seconds - micros / 1e6)
                    endpoint.datagrams_timed += 1
                    if wait < endpoint.least_wait:
                        endpoint.least_wait = wait
            try:  # (SipEndpoint._deliver inlined: one call fewer per datagram)
                on_message(data, source)
            except Exception:  # a handler bug must not kill the listener
                log.exception("message handler failed for udp from %s", source.host)
            finally:
                endpoint.datagram_wait = 0.0

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        if self.outbox is not None:
            self.outbox.append((data, address))
            return
        self._send_all(((data, address),))

    def _send_all(self, datagrams: Iterable[tuple[bytes, tuple[str, int]]]) -> None:
        sock = self.sock
        if sock is None:
            return
        for data, address in datagrams:
            try:
                sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                self.endpoint.send_drops += 1
            except OSError as err:
                log.debug("udp send from %s to %s: %s", self.address, address, err)

    def close(self) -> None:
        if self.outbox:  # closed by a handler of the batch: what it sent before leaves
            self._send_all(self.outbox)
            self.outbox.clear()  # (the batch's list: nothing left for it to send again)
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove_reader(sock.fileno())
            sock.close()


def _bind_udp(host: str, port: int, reuse_port: bool, receive_buffer: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, receive_buffer)
        except OSError:  # not root: up to net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class SipEndpoint:
    def __init__(self, config: EndpointConfig, on_message: MessageHandler,
                 on_transport_event: TransportEventHandler | None = None) -> None:
        self.config = config
        self.limits = config.limits or Limits(max_message_size=config.max_message_size)
        self.budget = config.budget or ConnectionBudget(self.limits)
        self.on_message = on_message
        self.on_transport_event = on_transport_event
        # Told when octets could not be sent (no connection could be opened to the peer).
        self.on_send_error: Callable[[Destination, OSError], None] | None = None
        self._udp: _UdpSocket | None = None
        # Seconds the datagram being delivered waited in the kernel's receive buffer (0 for
        # streams): read by the handler during the on_message call.
        self.datagram_wait = 0.0
        # Datagrams read with a receive time, and the shortest wait among them, since the
        # owner last took them (take_wait_figures).
        self.datagrams_timed = 0
        self.least_wait = float("inf")
        self.send_drops = 0  # datagrams lost to a full send buffer
        self._servers: list[Any] = []  # asyncio or uvloop Server objects
        self._tls_listener: socket.socket | None = None
        self._tls_accepting: asyncio.Task[None] | None = None
        self._connections: dict[tuple[str, str, int], _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.udp_address: tuple[str, int] = (config.host, 0)
        self.tcp_address: tuple[str, int] | None = None
        self.tls_address: tuple[str, int] | None = None

    @property
    def datagrams_wait_visibly(self) -> bool:
        """Whether a UDP backlog shows as waiting time: the receive buffer is as large as
        ``udp_receive_buffer`` asks (a small one overflows - drops at random - first)."""
        return self._udp is not None and self._udp.buffer >= self.limits.udp_receive_buffer

    def take_wait_figures(self) -> tuple[int, float]:
        """(datagrams read with a receive time, the shortest wait among them) since the
        previous call; the counts start again."""
        figures = (self.datagrams_timed, self.least_wait if self.datagrams_timed else 0.0)
        self.datagrams_timed, self.least_wait = 0, float("inf")
        return figures

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            if cfg.udp_port is not None:
                self._udp = _UdpSocket(self, _bind_udp(cfg.host, cfg.udp_port, cfg.reuse_port,
                                                       self.limits.udp_receive_buffer))
                self.udp_address = self._udp.address
            if cfg.tcp_port is not None:
                server = await asyncio.start_server(
                    self._accept("tcp"), cfg.host, cfg.tcp_port, reuse_address=True,
                    reuse_port=cfg.reuse_port or None)
                self._servers.append(server)
                self.tcp_address = server.sockets[0].getsockname()[:2]
            if cfg.tls_port is not None and cfg.tls_context is not None:
                self._tls_listener = _listening_socket(cfg.host, cfg.tls_port, cfg.reuse_port)
                self.tls_address = self._tls_listener.getsockname()[:2]
                self._tls_accepting = loop.create_task(self._accept_tls(self._tls_listener))
        except OSError as err:
            await self.close()
            raise OSError(err.errno, f"cannot listen on {cfg.host}: {err.strerror}") from err

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        if self._tls_accepting is not None:
            self._tls_accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tls_accepting  # it stops watching the socket before it closes
            self._tls_accepting = None
        if self._tls_listener is not None:
            self._tls_listener.close()
            self._tls_listener = None
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
            if not self.budget.take(remote[0]):
                log.info("refusing a %s connection from %s: connection limit reached",
                         transport, remote[0])
                writer.transport.abort()
                return
            try:
                conn = _Connection(transport, reader, writer, remote, local,
                                   StreamFramer(self.limits.max_message_size), accepted=True)
                await self._serve(conn)
            finally:
                self.budget.give_back(remote[0])

        return handle

    async def _accept_tls(self, listener: socket.socket) -> None:
        """Accept TLS connections and run each handshake where its failure is seen.

        A server made with ``ssl=`` drops a failed handshake silently (asyncio logs it at
        debug level only), and starting TLS later in a stream handler loses a ClientHello
        that arrived before the handler ran (uvloop starts reading right after accepting).
        ``connect_accepted_socket`` wraps the socket before anything is read and raises
        the handshake's error, so a client that rejects the edge can be explained."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as err:  # out of descriptors: let some connections end first
                log.warning("TLS accept on %s failed: %s", self.config.host, err)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._accept_tls_connection(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _accept_tls_connection(self, sock: socket.socket) -> None:
        try:
            remote = sock.getpeername()[:2]
            local = sock.getsockname()[:2]
        except OSError:
            sock.close()
            return
        if not self.budget.take(remote[0]):
            log.info("refusing a tls connection from %s: connection limit reached", remote[0])
            sock.close()
            return
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.limits.tls_handshake_timeout  # from accept to done
            if not await _has_bytes(sock, self.limits.tls_handshake_timeout):
                sock.close()  # a probe or a client that never began: nothing to explain
                return
            reader = asyncio.StreamReader(limit=2 ** 16, loop=loop)
            if self.config.tls_refresh is not None:
                self.config.tls_refresh()
            try:
                transport, protocol = await loop.connect_accepted_socket(
                    lambda: asyncio.StreamReaderProtocol(reader, loop=loop), sock,
                    ssl=self.config.tls_context,
                    ssl_handshake_timeout=max(deadline - loop.time(), 0.1))
            except ssl.SSLError as err:
                sock.close()
                reason = err.reason or type(err).__name__
                log.info("TLS handshake from %s:%s failed: %s", *remote, reason)
                if self.on_transport_event is not None:
                    self.on_transport_event("tls-handshake-failed",
                                            Source("tls", *remote, *local), str(reason))
                return
            except (OSError, TimeoutError) as err:
                sock.close()
                # The ClientHello had begun: a client that hangs up now (often one that did
                # not trust the certificate) or stalls is worth explaining too.
                reason = ("closed by the client without a TLS alert"
                          if isinstance(err, ConnectionError) else
                          f"no complete handshake within {self.limits.tls_handshake_timeout:g} s"
                          if isinstance(err, TimeoutError) else str(err) or type(err).__name__)
                log.info("TLS handshake from %s:%s failed: %s", *remote, reason)
                if self.on_transport_event is not None:
                    self.on_transport_event("tls-handshake-failed",
                                            Source("tls", *remote, *local), reason)
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            conn = _Connection("tls", reader, writer, remote, local,
                               StreamFramer(self.limits.max_message_size), accepted=True)
            await self._serve(conn)
        finally:
            self.budget.give_back(remote[0])

    async def _serve(self, conn: _Connection) -> None:
        key = (conn.transport, conn.remote[0], conn.remote[1])
        self._connections[key] = conn
        sock = conn.writer.get_extra_info("socket")
        if sock is not None:
            # Replies a peer does not read must queue where the write limits see them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.stream_send_buffer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        limits = self.limits
        loop = asyncio.get_running_loop()
        # A peer must finish a message it has begun (and an accepted connection its first
        # message) within the header timeout; between messages only the idle timeout runs.
        message_deadline = loop.time() + limits.stream_header_timeout if conn.accepted else None
        transport = conn.writer.transport
        transport.set_write_buffer_limits(high=limits.stream_write_high_water)
        try:
            while True:
                timeout = limits.stream_idle_timeout
                if message_deadline is not None:
                    timeout = min(timeout, message_deadline - loop.time())
                try:
                    data = await asyncio.wait_for(conn.reader.read(65536), max(timeout, 0))
                except TimeoutError:
                    log.info("closing %s connection from %s: %s", conn.transport, conn.remote[0],
                             "idle" if message_deadline is None else "no whole message in time")
                    break
                except (ConnectionError, ssl.SSLError):
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
                                                Source(conn.transport, *conn.remote, *conn.local),
                                                "")
                    break
                conn.framer.feed(data)
                delivered = conn.messages
                try:
                    while (message := conn.framer.next_message()) is not None:
                        conn.messages += 1
                        self._deliver(message, Source(conn.transport, *conn.remote, *conn.local))
                except SipParseError as err:
                    # The stream's framing is lost: nothing after this point can be trusted.
                    # When the header section was readable (513 Message Too Large), the peer
                    # is told why before the connection closes.
                    log.info("closing %s connection from %s: %s", conn.transport, conn.remote[0], err.reason)
                    reply = refusal(err)
                    if reply is not None:
                        self._write(conn, reply.to_bytes())
                    break
                if conn.messages > delivered or not conn.accepted:
                    message_deadline = None  # a message completed: the clock starts afresh
                if conn.framer.buffered and message_deadline is None:
                    message_deadline = loop.time() + limits.stream_header_timeout
                if conn.framer.keepalives:
                    conn.framer.keepalives = 0
                    self._write(conn, b"\r\n")  # RFC 5626 §4.4.1 pong
                if transport.is_closing():
                    break
                if transport.get_write_buffer_size() > limits.stream_write_high_water:
                    # The peer is not reading our replies: read nothing more from it until it
                    # does, so what it sends waits in its own socket buffers, not in ours.
                    try:
                        await asyncio.wait_for(conn.writer.drain(), limits.stream_write_stall)
                    except (TimeoutError, ConnectionError):
                        log.info("closing %s connection from %s: it does not read its replies",
                                 conn.transport, conn.remote[0])
                        transport.abort()
                        break
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
            if self._udp is None or self._udp.sock is None:
                raise OSError("UDP is not enabled on this endpoint")
            self._send_datagram(data, destination)
            return
        conn = self._connections.get((destination.transport, destination.host, destination.port))
        if conn is None or conn.writer.is_closing():
            conn = await self._connect(destination)
        self._write(conn, data)

    def send_now(self, data: bytes, destination: Destination) -> None:
        """Fire-and-forget variant for callers that are not coroutines (UDP leaves at once, or
        with the replies of the batch being read: _UdpSocket)."""
        udp = self._udp
        if destination.transport == "udp" and udp is not None and udp.sock:
            if self.config.impairment.active:
                self._send_datagram(data, destination)
                return
            udp.sendto(data, (destination.host, destination.port))
            return
        conn = self._connections.get((destination.transport, destination.host, destination.port))
        if conn is not None and not conn.writer.is_closing():
            self._write(conn, data)
            return
        task = asyncio.get_running_loop().create_task(self._send_logged(data, destination))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write(self, conn: _Connection, data: bytes) -> None:
        """Queue octets on a connection; one whose queue outgrows the write limit is closed
        (its peer has stopped reading, and the queue would otherwise grow without bound)."""
        transport = conn.writer.transport
        if transport.is_closing():
            return
        conn.writer.write(data)
        if transport.get_write_buffer_size() > self.limits.stream_write_limit:
            log.info("closing %s connection to %s: %d bytes unread", conn.transport,
                     conn.remote[0], transport.get_write_buffer_size())
            transport.abort()

    def _send_datagram(self, data: bytes, destination: Destination) -> None:
        impairment = self.config.impairment
        if impairment.drops():
            return
        assert self._udp is not None
        address = (destination.host, destination.port)
        if impairment.latency_ms > 0:
            asyncio.get_running_loop().call_later(
                impairment.latency_ms / 1000, self._udp.sendto, data, address)
        else:
            self._udp.sendto(data, address)

    async def _send_logged(self, data: bytes, destination: Destination) -> None:
        try:
            await self.send(data, destination)
        except OSError as err:
            log.info("send to %s:%s over %s failed: %s", destination.host, destination.port,
                     destination.transport, err)
            if self.on_send_error is not None:
                self.on_send_error(destination, err)

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
                           StreamFramer(self.limits.max_message_size))
        task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._tasks.add(task)
        await asyncio.sleep(0)  # let _serve register the connection before we write
        return conn

    @property
    def open_connections(self) -> int:
        return len(self._connections)


async def _has_bytes(sock: socket.socket, timeout: float) -> bool:
    """Wait until an accepted socket has something to read; True when it is data (not end
    of stream), which is left in the socket for the TLS layer."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    fd = sock.fileno()
    loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
    try:
        await asyncio.wait_for(readable, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def _listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
