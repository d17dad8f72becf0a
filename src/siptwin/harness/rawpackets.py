"""scapy raw packets for the node: spoofed loopback sources, fragments, oversized datagrams.

Root only (raw sockets), loopback only: every destination and source must be in 127.0.0.0/8.
scapy has no SIP layer, so payloads stay ``Raw``. Replies are read with ordinary UDP sockets
bound to the (spoofed) source address - any 127.x address is local, so a spoofed source can
still hear its answers - never by sniffing (on ``lo`` scapy sees every packet twice).
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import time

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def _check(*addresses: str) -> None:
    for address in addresses:
        if ipaddress.ip_address(address) not in LOOPBACK:
            raise ValueError(f"{address} is not a loopback address: raw packets stay on lo")


def send_udp(src: str, sport: int, dst: str, dport: int, payload: bytes, *,
             fragsize: int | None = None) -> int:
    """Send one UDP datagram with any loopback source; fragmented when ``fragsize`` is given.
    Returns the number of IP packets sent."""
    _check(src, dst)
    from scapy.all import IP, UDP, Raw, conf, fragment, send  # deferred: slow import, root only

    conf.verb = 0
    packet = IP(src=src, dst=dst, id=secrets.randbelow(65535)) / UDP(sport=sport, dport=dport) / Raw(payload)
    packets = fragment(packet, fragsize=fragsize) if fragsize else [packet]
    for each in packets:  # send() refuses iface= with a list
        send(each, iface="lo", verbose=False)
    return len(packets)


class Listener:
    """A UDP socket on (address, port) that collects what the node sends back."""

    def __init__(self, address: str, port: int = 0) -> None:
        _check(address)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.address, self.port = self.sock.getsockname()

    def collect(self, wait: float = 1.0, until_final: bool = True) -> list[bytes]:
        out: list[bytes] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(70000)
            except (TimeoutError, OSError):
                break
            out.append(data)
            status = data[8:11]
            if until_final and data.startswith(b"SIP/2.0 ") and status.isdigit() and int(status) >= 200:
                break
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def invite(host: str, src: str, sport: int, *, call_id: str | None = None, extra: str = "",
           body: str | None = None, content_length: int | None = None) -> bytes:
    """An INVITE as text, with a Via naming the (spoofed) source."""
    call_id = call_id or f"{secrets.token_hex(8)}@scapy"
    body = body if body is not None else (
        f"v=0\r\no=- 1 1 IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
    length = len(body.encode()) if content_length is None else content_length
    return (f"INVITE sip:1000@{host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {src}:{sport};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
            f"From: <sip:scapy@{src}>;tag={secrets.token_hex(4)}\r\nTo: <sip:1000@{host}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:scapy@{src}:{sport}>\r\n"
            f"Max-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\n"
            f"Content-Length: {length}\r\n\r\n{body}").encode()
