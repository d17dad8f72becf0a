"""Parse + serialise rate of the SIP core, for a typical INVITE and for RFC 4475 wsinv.

Run: python bench/parse.py [--seconds N]
Lazy decoding means a parse touches only the framing; the "+views" figure also decodes the
headers a region node reads for every INVITE (Via, From, To, Call-ID, CSeq, Max-Forwards).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from siptwin.sip.message import parse_datagram

ROOT = Path(__file__).resolve().parents[1]

TYPICAL_INVITE = (
    b"INVITE sip:+14155550100@acme.sip.ie1.twilio.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.10:5080;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:+14155550100@acme.sip.ie1.twilio.com>\r\n"
    b'From: "Alice" <sip:alice@pbx.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pbx.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@127.0.0.10:5080>\r\n"
    b"User-Agent: Asterisk PBX 20.5.0\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO\r\n"
    b"Supported: replaces, timer\r\n"
    b"X-Customer-Id: a=1;b=2;c=3\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 142\r\n"
    b"\r\n"
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\n"
    b"m=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


def rate(data: bytes, seconds: float, views: bool) -> float:
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            msg = parse_datagram(data)
            if views:
                _ = msg.top_via.branch, msg.from_.tag, msg.to.tag, msg.call_id, msg.cseq
                _ = msg.max_forwards
            msg.to_bytes()
        count += 200
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    wsinv = (ROOT / "tests" / "data" / "rfc4475" / "wsinv.dat").read_bytes()
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    for name, data in (("typical INVITE", TYPICAL_INVITE), ("wsinv", wsinv)):
        for views in (False, True):
            label = f"{name}{' +views' if views else ''}"
            print(f"{label:24s} {rate(data, args.seconds, views):>10,.0f} parse+serialise/s")
    print("reproduce: python bench/parse.py --seconds", args.seconds)


if __name__ == "__main__":
    main()
