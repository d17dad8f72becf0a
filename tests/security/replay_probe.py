"""Finding 4 of issue 15, run in a network namespace of its own (see test_cross_worker_replay).

Starts ``siptwin up --detach --workers 2 --regions us1``. For each of TRIALS source ports, a
caller authenticates an INVITE over UDP (407, then 200) and hangs up; an attacker who captured
that INVITE replays it - same Call-ID, tags and Proxy-Authorization - over TCP from the same
address and port. The kernel spreads UDP and TCP over the two processes independently, so
about half of the replays land on the process that did not see the original. Prints one JSON
line: how many replays were accepted, challenged again or refused, and on which processes.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.sip.digest import answer_challenge, parse_challenge
from siptwin.sip.message import StreamFramer, make_request, parse_datagram, parse_stream_message
from siptwin.sip.sdp import make_offer

PASSWORD = "Harbour7Lights"
NODE = ("127.0.1.1", 5060)
URI = "sip:1000@acme.sip.us1.twilio.com"
TRIALS = 12


def siptwin(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run([sys.executable, "-m", "siptwin", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def value(output: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in output.splitlines() if line.startswith(key + "="))


class Leg:
    def __init__(self, port: int) -> None:
        self.port = port
        self.call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        self.from_tag = secrets.token_hex(4)
        self.cseq = 0

    def request(self, method: str, transport: str, headers=(), body: bytes = b"",
                to_tag: str | None = None):
        self.cseq += 1
        return make_request(method, URI, [
            ("Via", f"SIP/2.0/{transport} 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport"),
            ("Max-Forwards", "70"), ("From", f"<sip:alice@127.0.0.1>;tag={self.from_tag}"),
            ("To", f"<{URI}>" + (f";tag={to_tag}" if to_tag else "")),
            ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} {method}"),
            ("Contact", f"<sip:alice@127.0.0.1:{self.port}>"), *headers,
            *([("Content-Type", "application/sdp")] if body else []),
        ], body)


def udp_final(sock: socket.socket, request) -> object:
    sock.sendto(request.to_bytes(), NODE)
    while True:
        message = parse_datagram(sock.recv(65536))
        if message.status >= 200 and message.cseq.number == request.cseq.number:
            return message


def ack(sock: socket.socket, leg: Leg, response, invite) -> None:
    tag = response.to.tag
    ack_request = make_request("ACK", URI, [
        ("Via", invite.headers.get("Via") if response.status >= 300 else
         f"SIP/2.0/UDP 127.0.0.1:{leg.port};branch=z9hG4bK{secrets.token_hex(6)};rport"),
        ("Max-Forwards", "70"), ("From", invite.headers.get("From")),
        ("To", f"<{URI}>;tag={tag}"), ("Call-ID", leg.call_id),
        ("CSeq", f"{invite.cseq.number} ACK"),
    ])
    sock.sendto(ack_request.to_bytes(), NODE)


def tcp_final(port: int, data: bytes) -> object | None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.settimeout(5)
        sock.connect(NODE)
        sock.sendall(data)
        framer = StreamFramer()
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            framer.feed(chunk)
            while (data := framer.next_message()) is not None:
                message = parse_stream_message(data)
                if message.status >= 200:
                    return message


def trial() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        leg = Leg(sock.getsockname()[1])
        offer = make_offer("127.0.0.1", 20000, 1)
        invite = leg.request("INVITE", "UDP", body=offer)
        challenged = udp_final(sock, invite)
        assert challenged.status == 407, challenged.status
        ack(sock, leg, challenged, invite)
        challenge = parse_challenge(challenged.headers.get("Proxy-Authenticate"))
        authorization = answer_challenge(challenge, "INVITE", URI, "alice", PASSWORD).to_header()
        invite = leg.request("INVITE", "UDP", [("Proxy-Authorization", authorization)], offer)
        answered = udp_final(sock, invite)
        assert answered.status == 200, answered.status
        ack(sock, leg, answered, invite)
        bye = leg.request("BYE", "UDP", to_tag=answered.to.tag)
        udp_final(sock, bye)
        # The attacker's copy: the same INVITE, over TCP from the same address and port.
        replay = leg.request("INVITE", "TCP", [("Proxy-Authorization", authorization)], offer)
        final = tcp_final(leg.port, replay.to_bytes())
    if final is None:
        return "no answer"
    return {200: "accepted", 407: "challenged", 403: "refused"}.get(final.status, str(final.status))


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="siptwin-replay-"))
    started = siptwin("up", "--detach", "--workers", "2", "--regions", "us1", "--state",
                      str(state), "--api-port", "8765", "--dns-port", "5300")
    if started.returncode != 0:
        print(json.dumps({"error": started.stdout + started.stderr}))
        return 1
    try:
        out = started.stdout  # the token is printed there, never written to the log
        sid, token = value(out, "TWILIO_ACCOUNT_SID"), value(out, "TWILIO_AUTH_TOKEN")
        provision(sdk_client("http://127.0.0.1:8765", sid, token),
                  DomainPlan("acme", voice_url="twiml:<Response><Pause length=\"1\"/></Response>",
                             credentials=[("alice", PASSWORD)]))
        time.sleep(0.5)  # the worker sees the domain through the shared SQLite file
        outcomes = [trial() for _ in range(TRIALS)]
    finally:
        siptwin("down", "--state", str(state))
    print(json.dumps({"outcomes": outcomes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
