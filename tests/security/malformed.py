"""The malformed-SIP catalogue of the attack suite: the RFC 4475 torture corpus in the
repository and the harness's own broken messages (truncated, garbage, NUL bytes, lying
Content-Length, undecodable octets, oversized), one name per message."""

from __future__ import annotations

import secrets
from pathlib import Path

from siptwin.harness.rawpackets import invite

RFC4475 = Path(__file__).resolve().parents[1] / "data" / "rfc4475"


def rfc4475_corpus() -> dict[str, bytes]:
    return {f"rfc4475/{path.stem}": path.read_bytes() for path in sorted(RFC4475.glob("*.dat"))}


def broken_messages(host: str, src: str, *, stream: bool = False) -> dict[str, bytes]:
    """Messages no parser should trust. ``stream`` adds those only TCP/TLS can carry (a
    message above the UDP maximum)."""
    cases = {
        "truncated mid-header": invite(host, src, 0)[:90],
        "binary garbage": secrets.token_bytes(1200),
        "NUL bytes": b"\x00" * 512,
        "Content-Length larger than the body": invite(host, src, 0, content_length=9999),
        "Content-Length smaller than the body": invite(host, src, 0, content_length=10),
        "negative Content-Length": invite(host, src, 0, content_length=-5),
        "empty datagram": b"",
        "CRLF keep-alive": b"\r\n\r\n",
        "undecodable Call-ID": invite(host, src, 0).replace(b"@scapy", b"\xff\xfe\xc3(@scapy"),
        "undecodable X- header": invite(host, src, 0, extra="X-Bad: UNDECODABLE\r\n")
        .replace(b"UNDECODABLE", b"\xff\xfe\xc3("),
        "undecodable request line": invite(host, src, 0).replace(b"sip:1000@", b"sip:1\xff0@", 1),
        "no blank line after headers": invite(host, src, 0, body="").rstrip(b"\r\n"),
        "header line of 60,000 bytes": invite(host, src, 0, extra=f"X-Long: {'l' * 60000}\r\n"),
        "1,000 Via headers": invite(host, src, 0, extra="".join(
            f"Via: SIP/2.0/UDP 10.0.{i // 250}.{i % 250};branch=z9hG4bK{i}\r\n"
            for i in range(1000))),
    }
    if stream:
        cases["message of 70,000 bytes"] = invite(host, src, 0, extra=f"X-Huge: {'h' * 70000}\r\n")
    return cases
