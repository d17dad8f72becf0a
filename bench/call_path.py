"""CPU per authenticated call inside one region node, without sockets or SIPp.

Run: python bench/call_path.py [--calls 3000] [--app pause,say] [--profile out.prof]

The embedded twin starts in this process (all eight regions, the control plane, the voice
layer) and a domain is provisioned through the twilio SDK with the app of bench/sipp_load.py
(``--app pause``: static ``<Pause>`` TwiML; ``say``: the seed's twimlets message, so each call
also starts streaming ``<Say>`` audio before its BYE; several apps run one after the other,
each in a fresh twin). A scripted caller then feeds the us1 node the datagrams of SIPp's
uac_auth flow - INVITE, ACK of the 407, INVITE with credentials, ACK, BYE - straight into its
receive entry point, and the node's replies are captured instead of sent. What remains is
the node's own work per call (parse, validation, transactions, the pipeline, digest, SDP,
the voice layer, call records), measured as process CPU time, with the caller's share
measured separately and subtracted.

This is the quick loop for optimising the call path (seconds per run; ``--profile`` writes
cProfile data). bench/sipp_load.py remains the measure of record: real sockets, a real peer,
the event loop under load.

Memory: every run prints VmRSS and PSS idle (after start and 50 warm-up calls), right after
the calls, after gc.collect() and after glibc's malloc_trim(0) (what fragmentation would give
back). ``--memory`` adds a tracemalloc diff by traceback (3 frames, allocation site last).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import re
import socket
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.regions.node import RegionNode
from siptwin.runtime import settle_for_serving
from siptwin.sip.routing import Hop
from siptwin.transport.endpoint import Source
from siptwin.twin.config import TwinConfig
from siptwin.twin.embedded import EmbeddedTwin

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sip_path import DOMAIN, SDP, request  # noqa: E402  (SIPp's datagrams, written once)
from sipp_load import APPS  # noqa: E402

USER, PASSWORD = "alice", "Harbour7Lights"
LABEL = DOMAIN.split(".")[0]
_NONCE = re.compile(rb'nonce="([^"]+)"')
_OPAQUE = re.compile(rb'opaque="([^"]+)"')
_TO = re.compile(rb"\r\nTo: ([^\r]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Caller:
    """SIPp's uac_auth.xml as string templates, one call at a time."""

    def __init__(self, node: RegionNode, port: int = 5061) -> None:
        self.node = node
        self.source = Source("udp", "127.0.0.1", port, node.region.address, 5060)
        self.sent: list[bytes] = []
        node.endpoint.send_now = self._capture  # type: ignore[method-assign]
        self.caller_cpu = 0.0

    def _capture(self, data: bytes, hop: Hop) -> None:
        self.sent.append(data)

    def _reply(self, status: bytes) -> bytes:
        return next(d for d in reversed(self.sent) if d.startswith(b"SIP/2.0 " + status))

    async def call(self, n: int) -> None:
        began = time.process_time()
        to = f"<sip:1000@{DOMAIN}>"
        invite = request("INVITE", n, "1", 1, to, body=SDP)
        self.caller_cpu += time.process_time() - began
        self.node._on_bytes(invite, self.source)

        began = time.process_time()
        challenge = self._reply(b"407")
        nonce = _NONCE.search(challenge).group(1).decode()  # type: ignore[union-attr]
        opaque = _OPAQUE.search(challenge).group(1).decode()  # type: ignore[union-attr]
        to_407 = _TO.search(challenge).group(1).decode()  # type: ignore[union-attr]
        ack = request("ACK", n, "1", 1, to_407)
        uri = f"sip:1000@{DOMAIN}"
        ha1 = hashlib.md5(f"{USER}:sip.twilio.com:{PASSWORD}".encode()).hexdigest()
        ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
        cnonce = f"{n:08x}"
        response = hashlib.md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
        auth = (f'Proxy-Authorization: Digest username="{USER}",realm="sip.twilio.com",'
                f'cnonce="{cnonce}",nc=00000001,qop=auth,uri="{uri}",nonce="{nonce}",'
                f'response="{response}",algorithm=MD5,opaque="{opaque}"\r\n')
        invite2 = request("INVITE", n, "2", 2, to, auth, SDP)
        self.caller_cpu += time.process_time() - began
        self.node._on_bytes(ack, self.source)
        self.node._on_bytes(invite2, self.source)
        for _ in range(50):  # the voice layer answers from its own task
            if self.sent[-1].startswith(b"SIP/2.0 200"):
                break
            await asyncio.sleep(0)
        else:
            raise RuntimeError(f"call {n} was not answered: {self.sent[-1][:60]!r}")

        began = time.process_time()
        to_200 = _TO.search(self.sent[-1]).group(1).decode()  # type: ignore[union-attr]
        ack2 = request("ACK", n, "3", 2, to_200)
        bye = request("BYE", n, "4", 3, to_200)
        self.caller_cpu += time.process_time() - began
        self.node._on_bytes(ack2, self.source)
        self.node._on_bytes(bye, self.source)
        if not self.sent[-1].startswith(b"SIP/2.0 200"):
            raise RuntimeError(f"BYE of call {n} got {self.sent[-1][:40]!r}")
        for _ in range(5):
            await asyncio.sleep(0)  # let the voice layer finish the call
        self.sent.clear()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_line(label: str) -> str:
    return f"{label}: VmRSS {rss_mb():.1f} MB, PSS {pss_mb():.1f} MB"


def malloc_trim() -> None:
    """Hand glibc's free heap pages back to the kernel (an experiment; glibc only)."""
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)


async def run(calls: int, profile: Path | None, memory: bool, voice_url: str) -> float:
    with tempfile.TemporaryDirectory(prefix="siptwin-callpath-") as tmp:
        twin = EmbeddedTwin(TwinConfig(state_dir=Path(tmp), api_port=free_port(),
                                       dns_port=free_port(), tls=False))
        await twin.start()
        try:
            client = sdk_client(twin.api_url, twin.account_sid, twin.auth_token)
            await asyncio.to_thread(provision, client, DomainPlan(
                LABEL, voice_url=voice_url, credentials=[(USER, PASSWORD)]))
            caller = Caller(twin.nodes["us1"])
            settle_for_serving()  # as `siptwin up` does once ready
            for n in range(50):  # warm up: caches, first imports
                await caller.call(n)
            rss_before = rss_mb()
            print(memory_line("idle after start and 50 calls"))
            if memory:
                tracemalloc.start(3)
                idle = tracemalloc.take_snapshot()
            caller.caller_cpu = 0.0
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            began_cpu, began_wall = time.process_time(), time.perf_counter()
            for n in range(1000, 1000 + calls):
                await caller.call(n)
            cpu = time.process_time() - began_cpu
            wall = time.perf_counter() - began_wall
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
            node_cpu = cpu - caller.caller_cpu
            print(f"{calls} calls in {wall:.2f} s; node CPU {node_cpu * 1e3 / calls:.3f} ms per "
                  f"call (caller {caller.caller_cpu * 1e3 / calls:.3f} ms per call excluded)"
                  f" -> at most {calls / node_cpu:.0f} calls/s on one core")
            print(f"transactions alive: {len(twin.nodes['us1'].layer)}; call records: "
                  f"{len(twin.calls.all())}; VmRSS {rss_before:.1f} -> {rss_mb():.1f} MB")
            print(memory_line("right after the calls"))
            if memory:
                snapshot = tracemalloc.take_snapshot()
                traced, _ = tracemalloc.get_traced_memory()
                print(f"traced live Python allocations since idle: {traced / 2**20:.1f} MB "
                      f"(tracemalloc's own bookkeeping: {tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MB); "
                      "top 25 growths by traceback:")
                for stat in snapshot.compare_to(idle, "traceback")[:25]:
                    where = " < ".join(f"{frame.filename.split('/src/')[-1].split('/lib/')[-1]}:"
                                       f"{frame.lineno}" for frame in stat.traceback)
                    print(f"  {stat.size_diff / 2**20:6.2f} MB {stat.count_diff:>+8} blocks  {where}")
                tracemalloc.stop()
            gc.collect()
            print(memory_line("after gc.collect()"))
            malloc_trim()
            print(memory_line("after malloc_trim(0)"))
            return node_cpu * 1e3 / calls
        finally:
            await twin.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--profile", type=Path, help="write cProfile data of the measured calls")
    parser.add_argument("--memory", action="store_true",
                        help="trace allocations (slower: timers expire sooner than at full speed) and "
                             "print the top 25 growths by traceback, idle to after the calls")
    parser.add_argument("--app", default="pause", help="comma-separated: " + ", ".join(APPS))
    args = parser.parse_args()
    results = {}
    for app in args.app.split(","):
        print(f"== app {app}: {APPS[app]}")
        profile = args.profile.with_suffix(f".{app}.prof") if args.profile and "," in args.app \
            else args.profile
        results[app] = asyncio.run(run(args.calls, profile, args.memory, APPS[app]))
    if len(results) > 1:
        print("node CPU per call: " + "; ".join(f"{app} {ms:.3f} ms" for app, ms in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
