"""Finding 6 of issue 15, run in a network namespace of its own (see test_connection_exhaustion).

Starts ``siptwin up --detach --regions us1`` under a descriptor limit of 1024, opens 2,000 TCP
connections to its SIP port from 20 loopback addresses and sends nothing on them, then checks
that the REST API and a UDP call still work, that the twin's descriptors stay under its limit,
and that the idle connections are closed once the header timeout has passed. Prints one JSON
line of figures; the test asserts on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.ua.client import Auth, SipClient

PASSWORD = "Harbour7Lights"
NOFILE = 1024
CONNECTIONS, SOURCES = 2000, 20
HEADER_TIMEOUT = 4.0
NODE = ("127.0.1.1", 5060)
HOST = "acme.sip.us1.twilio.com"


def siptwin(*args: str, limit_files: bool = False) -> subprocess.CompletedProcess[str]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run([sys.executable, "-m", "siptwin", *args], capture_output=True,
                          text=True, timeout=60, env=env, preexec_fn=lower if limit_files else None)


def value(output: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in output.splitlines() if line.startswith(key + "="))


def api_works(api: str, sid: str, token: str) -> bool:
    request = urllib.request.Request(f"{api}/2010-04-01/Accounts/{sid}.json")
    request.add_header("Authorization", "Basic " + b64encode(f"{sid}:{token}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status == 200 and json.loads(response.read())["sid"] == sid
    except OSError:
        return False


async def call(transport: str, source: str) -> int | None:
    try:
        async with SipClient(source, transport) as client:
            result = await asyncio.wait_for(client.invite(
                *NODE, f"sip:1000@{HOST}", auth=Auth("alice", PASSWORD), hang_up=True,
                wait_final=5), 15)
    except (OSError, TimeoutError):
        return None
    return result.statuses[-1] if result.statuses else None


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def flood() -> tuple[list[socket.socket], int]:
    """Open the connections one after another (each waits for its handshake, so the listen
    backlog never drops SYNs); returns them and how many completed."""
    sockets, connected = [], 0
    for index in range(CONNECTIONS):
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((f"127.0.2.{1 + index % SOURCES}", 0))
        with contextlib.suppress(BlockingIOError):
            sock.connect(NODE)
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        if poller.poll(2000) and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            connected += 1
        sockets.append(sock)
    return sockets, connected


def closed_by_twin(sockets: list[socket.socket]) -> int:
    """How many connections the twin has closed (EOF or reset readable on our side)."""
    closed = 0
    for sock in sockets:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            continue
        try:
            closed += sock.recv(1) == b""
        except OSError:
            closed += 1
    return closed


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    state = Path(tempfile.mkdtemp(prefix="siptwin-exhaustion-"))
    started = siptwin("up", "--detach", "--regions", "us1", "--state", str(state),
                      "--api-port", "8765", "--dns-port", "5300",
                      "--limit", f"stream_header_timeout={HEADER_TIMEOUT}", limit_files=True)
    if started.returncode != 0:
        print(json.dumps({"error": started.stdout + started.stderr}))
        return 1
    figures: dict[str, object] = {}
    try:
        pid = int((state / "siptwin.pid").read_text().split()[0])
        api = "http://127.0.0.1:8765"
        out = started.stdout  # the token is printed there, never written to the log
        sid, token = value(out, "TWILIO_ACCOUNT_SID"), value(out, "TWILIO_AUTH_TOKEN")
        provision(sdk_client(api, sid, token), DomainPlan("acme", credentials=[("alice", PASSWORD)],
                                                         voice_url="twiml:<Response><Pause length=\"1\"/></Response>"))
        figures["rss_before"] = rss(pid)
        began = time.monotonic()
        sockets, figures["connected"] = flood()
        figures["flood_seconds"] = round(time.monotonic() - began, 1)
        figures["twin_descriptors_during"] = len(os.listdir(f"/proc/{pid}/fd"))
        figures["refused_at_once"] = closed_by_twin(sockets)
        figures["api_during"] = api_works(api, sid, token)
        figures["udp_call_during"] = asyncio.run(call("udp", "127.0.0.1"))
        time.sleep(HEADER_TIMEOUT + 2.0)
        figures["closed_after_timeout"] = closed_by_twin(sockets)
        figures["twin_descriptors_after_timeout"] = len(os.listdir(f"/proc/{pid}/fd"))
        figures["connections"] = len(sockets)
        for sock in sockets:
            sock.close()
        time.sleep(0.5)
        figures["tcp_call_after"] = asyncio.run(call("tcp", "127.0.0.1"))
        figures["rss_after"] = rss(pid)
    finally:
        siptwin("down", "--state", str(state))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
