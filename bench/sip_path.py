"""CPU of the SIP core alone on one authenticated call, without the node, the pipeline or voice.

Run: python bench/sip_path.py [--calls 200] [--repeats 25]

The five datagrams of SIPp's uac_auth flow (bench/call_path.py: INVITE, ACK of the 407,
INVITE with credentials, ACK of the 200, BYE) go through what a region node does with each
before and after its Twilio rules: ``admit`` (parse and validate), ``stamped_hop`` (the
received stamp and the response hop), the transaction layer's ``receive``; the answers (100 and 407; 100, 180 and
200 with SDP; 200 to the BYE) are built with ``twilio_response``, handed to ``respond`` and
serialised. Process CPU time per call, the fastest and the median of ``--repeats`` runs of
``--calls`` calls: on a loaded machine the fastest run is the steadiest figure, and two
checkouts are compared by running this alternately in each.
"""

from __future__ import annotations

import argparse
import statistics
import time

from siptwin.regions.node import NODE_POLICY
from siptwin.regions.responses import twilio_response
from siptwin.sip.admission import admit
from siptwin.sip.message import Request, parse_datagram
from siptwin.sip.routing import stamped_hop
from siptwin.sip.transaction import Send, TransactionLayer, server_key

DOMAIN = "bench.sip.us1.twilio.com"
SDP = ("v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
CREDENTIALS = ('Proxy-Authorization: Digest username="alice",realm="sip.twilio.com",'
               'cnonce="0001",nc=00000001,qop=auth,uri="sip:1000@' + DOMAIN + '",nonce="abcdef",'
               'response="0123456789abcdef0123456789abcdef",algorithm=MD5,opaque="xyz"\r\n')
CHALLENGE = (("Proxy-Authenticate",
              'Digest realm="sip.twilio.com",nonce="abcdef",qop="auth",opaque="xyz"'),)
TO_TAG = "12345678_9abcdef0_01234567-89ab-4cde-8f01-23456789abcd"


def request(method: str, n: int, branch: str, cseq: int, to: str, extra: str = "",
            body: str = "") -> bytes:
    head = (f"{method} sip:1000@{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-{branch};rport\r\n"
            f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag00{n}\r\n"
            f"To: {to}\r\nCall-ID: {n}-4242@127.0.0.1\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: sip:sipp@127.0.0.1:5061\r\nMax-Forwards: 70\r\n"
            f"Subject: Performance Test\r\n{extra}")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def call_datagrams(n: int) -> list[bytes]:
    to = f"<sip:1000@{DOMAIN}>"
    tagged = f"{to};tag={TO_TAG}"
    return [request("INVITE", n, "1", 1, to, body=SDP), request("ACK", n, "1", 1, tagged),
            request("INVITE", n, "2", 2, to, CREDENTIALS, SDP), request("ACK", n, "3", 2, tagged),
            request("BYE", n, "4", 3, tagged)]


class Flow:
    def __init__(self) -> None:
        self.layer = TransactionLayer()
        self.now = 0.0
        self.sent = 0

    def receive(self, data: bytes) -> Request:
        message = admit(data, NODE_POLICY).message
        assert isinstance(message, Request), data[:40]
        hop = stamped_hop(message, "udp", "127.0.0.1", 5061)
        self.layer.receive(message, hop, self.now, reliable=False)
        return message

    def answer(self, message: Request, status: int, to_tag: str | None = None,
               extra: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> None:
        response = twilio_response(message, status, to_tag=to_tag, extra=extra, body=body)
        for effect in self.layer.respond(server_key(message), response, self.now):
            if isinstance(effect, Send):
                self.sent += len(effect.message.to_bytes())

    def call(self, datagrams: list[bytes]) -> None:
        self.now += 0.001
        invite, ack, invite2, ack2, bye = datagrams
        first = self.receive(invite)
        self.answer(first, 100)
        self.answer(first, 407, TO_TAG, CHALLENGE)
        self.receive(ack)
        second = self.receive(invite2)
        self.answer(second, 100)
        self.answer(second, 180, TO_TAG, (("Contact", "<sip:127.0.1.1:5060>"),))
        self.answer(second, 200, TO_TAG, (("Contact", "<sip:127.0.1.1:5060>"),), SDP.encode())
        self.receive(ack2)
        self.answer(self.receive(bye), 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    calls = [call_datagrams(n) for n in range(1000, 1000 + args.calls)]
    parse_runs, flow_runs = [], []
    for _ in range(args.repeats):
        began = time.process_time()
        for datagrams in calls:
            for data in datagrams:
                parse_datagram(data)
        parse_runs.append(time.process_time() - began)
        flow = Flow()  # a fresh layer each run: the same transactions are made again
        began = time.process_time()
        for datagrams in calls:
            flow.call(datagrams)
        flow_runs.append(time.process_time() - began)
    for label, runs in (("parse only (5 datagrams)", parse_runs),
                        ("SIP path of a call", flow_runs)):
        per_call = [run * 1e6 / args.calls for run in runs]
        print(f"{label:26s} fastest {min(per_call):6.1f} us, median "
              f"{statistics.median(per_call):6.1f} us per call")


if __name__ == "__main__":
    main()
