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
the event loop under load. The calls run on the event loop `siptwin up` serves on (uvloop when
installed; ``SIPTWIN_EVENT_LOOP=asyncio`` for asyncio's own), so that a change paying only on
one loop's Python-level methods shows for what the twin gains.

The datagrams are SIPp's own (``--datagrams sipp``, the default since the eighth session:
Via with ``rport``, which the node stamps, and a source port per call as ``-t un`` gives,
so every call's From, Contact and peer are new to the node's memos); ``--datagrams plain``
keeps the earlier, plainer ones of bench/sip_path.py. What the loop does not have of a twin
under SIPp: the sockets (bench/udp_receive.py ``--replies 1.2`` measures them alone), the
RTP of a call that lasts, and the idle time between datagrams below saturation: a process
that waits in its selector comes back to cold caches, and the same work then costs more
(``--idle-gap-ms 2`` shows it; bench/RESULTS.md, eighth session). ``--in-flight N`` runs N
calls at once, their datagrams interleaved.

Memory: every run prints VmRSS and PSS idle (after start and 50 warm-up calls), right after
the calls, after gc.collect() and after glibc's malloc_trim(0) (what fragmentation would give
back). ``--memory`` adds a tracemalloc diff by traceback (3 frames, allocation site last);
``--census N`` counts the objects the cyclic collector tracks, by type, before and after;
``--gc-passes`` times the collector's passes during the calls; ``--retained`` prints what
each part of the node (its attributes, followed into the objects they hold) keeps per call:
the layer's finished transactions, the call records, the nonce counts, ...
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import gc
import hashlib
import re
import socket
import sys
import tempfile
import time
import tracemalloc
import types
from collections.abc import AsyncIterator
from pathlib import Path

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.regions.node import RegionNode
from siptwin.runtime import run_event_loop, settle_for_serving
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
_CONTACT = re.compile(rb"\r\nContact: <([^>]+)>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SIPP_SDP = ("v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
            "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\n"
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-16\r\n")


def sipp_request(method: str, n: int, port: int, branch: str, cseq: int, to: str,
                 uri: str = f"sip:1000@{DOMAIN}", extra: str = "", body: str = "") -> bytes:
    """A request as harness/sipp/uac_auth.xml writes it with ``-t un`` (a source port per
    call): Via with ``rport``, From with a display name and the port, Contact with
    ``transport=UDP`` (in the INVITEs), the credentials before Max-Forwards."""
    contact = (f"Contact: <sip:sipp@127.0.0.1:{port};transport=UDP>\r\n"
               if method == "INVITE" else "")
    head = (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{n}-{branch};rport\r\n"
            f'From: "siptwin" <sip:sipp@127.0.0.1:{port}>;tag={n}SIPpTag00{n}\r\n'
            f"To: {to}\r\nCall-ID: {n}-4242@127.0.0.1\r\nCSeq: {cseq} {method}\r\n"
            f"{contact}{extra}Max-Forwards: 70\r\n")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


class Caller:
    """SIPp's uac_auth.xml as string templates, one call at a time.

    ``sipp_shaped`` (the default of ``--datagrams``): the datagrams as SIPp sends them to
    bench/sipp_load.py's twin, each call from its own source port; otherwise the plainer
    ones of bench/sip_path.py, every call from port 5061 (the figures before 2026-12-02's
    eighth session were taken with those)."""

    def __init__(self, node: RegionNode, port: int = 5061, sipp_shaped: bool = True,
                 board: Switchboard | None = None) -> None:
        self.node = node
        self.port = port
        self.sipp_shaped = sipp_shaped
        self.source = Source("udp", "127.0.0.1", port, node.region.address, 5060)
        self.sent: list[bytes] = []
        self.board = board
        if board is None:
            node.endpoint.send_now = self._capture  # type: ignore[method-assign]
        self.caller_cpu = 0.0

    def request(self, method: str, n: int, branch: str, cseq: int, to: str,
                extra: str = "", body: str = "", uri: str = f"sip:1000@{DOMAIN}") -> bytes:
        if self.sipp_shaped:
            return sipp_request(method, n, self.port, branch, cseq, to, uri, extra,
                                SIPP_SDP if body else "")
        return request(method, n, branch, cseq, to, extra, body)

    def _capture(self, data: bytes, hop: Hop) -> None:
        self.sent.append(data)

    def _reply(self, status: bytes) -> bytes:
        return next(d for d in reversed(self.sent) if d.startswith(b"SIP/2.0 " + status))

    async def _step(self) -> None:
        """Between two datagrams of a call: with other calls in flight, theirs go first."""
        if self.board is not None:
            await asyncio.sleep(0)

    async def call(self, n: int) -> None:
        if self.board is not None:
            self.board.callers[n] = self
        began = time.process_time()
        if self.sipp_shaped:  # -t un: a source port per call
            self.port = 20000 + n % 40000
            self.source = Source("udp", "127.0.0.1", self.port, self.node.region.address, 5060)
        to = f"<sip:1000@{DOMAIN}>"
        invite = self.request("INVITE", n, "1", 1, to, body=SDP)
        self.caller_cpu += time.process_time() - began
        self.node._on_bytes(invite, self.source)
        await self._step()

        began = time.process_time()
        challenge = self._reply(b"407")
        nonce = _NONCE.search(challenge).group(1).decode()  # type: ignore[union-attr]
        opaque = _OPAQUE.search(challenge).group(1).decode()  # type: ignore[union-attr]
        to_407 = _TO.search(challenge).group(1).decode()  # type: ignore[union-attr]
        ack = self.request("ACK", n, "1", 1, to_407)
        uri = f"sip:1000@{DOMAIN}"
        ha1 = hashlib.md5(f"{USER}:sip.twilio.com:{PASSWORD}".encode()).hexdigest()
        ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
        cnonce = f"{n:08x}"
        response = hashlib.md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
        auth = (f'Proxy-Authorization: Digest username="{USER}",realm="sip.twilio.com",'
                f'cnonce="{cnonce}",nc=00000001,qop=auth,uri="{uri}",nonce="{nonce}",'
                f'response="{response}",algorithm=MD5,opaque="{opaque}"\r\n')
        invite2 = self.request("INVITE", n, "2", 2, to, auth, SDP)
        self.caller_cpu += time.process_time() - began
        self.node._on_bytes(ack, self.source)
        await self._step()
        self.node._on_bytes(invite2, self.source)
        for _ in range(50):  # the voice layer answers from its own task
            if self.sent[-1].startswith(b"SIP/2.0 200"):
                break
            await asyncio.sleep(0)
        else:
            raise RuntimeError(f"call {n} was not answered: {self.sent[-1][:60]!r}")

        began = time.process_time()
        to_200 = _TO.search(self.sent[-1]).group(1).decode()  # type: ignore[union-attr]
        # SIPp sends the ACK and BYE to the 200's Contact ([next_url])
        contact = _CONTACT.search(self.sent[-1])
        next_url = contact.group(1).decode() if contact and self.sipp_shaped else f"sip:1000@{DOMAIN}"
        ack2 = self.request("ACK", n, "3", 2, to_200, uri=next_url)
        bye = self.request("BYE", n, "4", 3, to_200, uri=next_url)
        self.caller_cpu += time.process_time() - began
        self.node._on_bytes(ack2, self.source)
        await self._step()
        self.node._on_bytes(bye, self.source)
        if not self.sent[-1].startswith(b"SIP/2.0 200"):
            raise RuntimeError(f"BYE of call {n} got {self.sent[-1][:40]!r}")
        for _ in range(5):
            await asyncio.sleep(0)  # let the voice layer finish the call
        self.sent.clear()
        if self.board is not None:
            del self.board.callers[n]


class Switchboard:
    """With several calls in flight (``--in-flight``), hands each reply of the node to the
    caller of its call (by the Call-ID the callers write, ``<n>-4242@127.0.0.1``)."""

    _CALL_ID = re.compile(rb"\r\nCall-ID: (\d+)-4242@")

    def __init__(self, node: RegionNode) -> None:
        self.callers: dict[int, Caller] = {}
        node.endpoint.send_now = self._route  # type: ignore[method-assign]

    def _route(self, data: bytes, hop: Hop) -> None:
        found = self._CALL_ID.search(data)
        if found is not None and (caller := self.callers.get(int(found.group(1)))) is not None:
            caller.sent.append(data)


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


def tracked_census() -> collections.Counter[str]:
    """The objects the cyclic collector tracks (outside the frozen generation), by type,
    after a full collection: what every later collector pass has to walk."""
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def print_census(before: collections.Counter[str], after: collections.Counter[str],
                 calls: int, top: int) -> None:
    grown = after.copy()
    grown.subtract(before)
    total = sum(grown.values())
    print(f"objects the collector tracks: {sum(before.values())} -> {sum(after.values())} "
          f"(+{total}, {total / calls:.2f} a call); the {top} types grown most:")
    for name, n in grown.most_common(top):
        print(f"  {n:>8} {n / calls:6.2f} a call  {name}")


class CollectorPasses:
    """The cyclic collector's passes during the calls, per generation: how many, their CPU
    time (process time: a loaded machine's preemption does not count) and the objects each
    walked (the tracked objects of the generations it collects, counted before it starts;
    the counting costs CPU that the node's figure then includes)."""

    def __init__(self) -> None:
        self.passes: list[tuple[int, float, int]] = []  # generation, CPU ms, objects walked
        self._began = 0.0
        self._walked = 0
        gc.callbacks.append(self._on_pass)

    def _on_pass(self, phase: str, info: dict[str, int]) -> None:
        generation = info["generation"]
        if phase == "start":
            self._walked = sum(len(gc.get_objects(generation=g)) for g in range(generation + 1))
            self._began = time.process_time()
        else:
            self.passes.append((generation, (time.process_time() - self._began) * 1e3,
                                self._walked))

    def stop(self) -> None:
        gc.callbacks.remove(self._on_pass)

    def print(self) -> None:
        for generation in range(3):
            mine = [(ms, walked) for g, ms, walked in self.passes if g == generation]
            if not mine:
                print(f"collector gen{generation}: no pass")
                continue
            print(f"collector gen{generation}: {len(mine)} passes, CPU {sum(m for m, _ in mine):.1f} ms"
                  f" in all, longest {max(m for m, _ in mine):.1f} ms; objects walked: most "
                  f"{max(w for _, w in mine)}, mean {sum(w for _, w in mine) / len(mine):.0f}")


_NOT_FOLLOWED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                 types.MethodType, types.CodeType, asyncio.AbstractEventLoop)


def retained_sizes(root: object) -> dict[str, int]:
    """sys.getsizeof summed over what each attribute of ``root`` reaches (through
    gc.get_referents and __slots__; classes, modules, functions and the loop not followed),
    each object counted once, under the first attribute that reaches it."""
    seen: set[int] = set()
    sizes: dict[str, int] = {}
    names = [*getattr(root, "__dict__", {})]
    names += [n for c in type(root).__mro__ for n in getattr(c, "__slots__", ())]
    for name in names:
        total, stack = 0, [getattr(root, name, None)]
        while stack:
            obj = stack.pop()
            if id(obj) in seen or isinstance(obj, _NOT_FOLLOWED):
                continue
            seen.add(id(obj))
            total += sys.getsizeof(obj)
            stack.extend(gc.get_referents(obj))
            if not isinstance(obj, (tuple, list, dict, set, frozenset, str, bytes)):
                stack.extend(getattr(obj, slot, None) for c in type(obj).__mro__
                             for slot in getattr(c, "__slots__", ()))
        sizes[name] = total
    return sizes


def print_retained(before: dict[str, int], after: dict[str, int], calls: int) -> None:
    grown = sorted(((after[n] - before.get(n, 0), n) for n in after), reverse=True)
    total = sum(size for size, _ in grown)
    print(f"kept by the us1 node's attributes: +{total / 2**20:.1f} MB, {total / calls:.0f} "
          "bytes a call:")
    for size, name in grown:
        if abs(size) >= 1024:
            print(f"  {size / 2**20:7.2f} MB {size / calls:7.1f} bytes a call  node.{name}")


def malloc_trim() -> None:
    """Hand glibc's free heap pages back to the kernel (an experiment; glibc only)."""
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.asynccontextmanager
async def provisioned_twin(voice_url: str) -> AsyncIterator[EmbeddedTwin]:
    """An embedded twin (temporary state, no TLS) with the bench domain provisioned through
    the SDK: a credential list and ``voice_url``."""
    with tempfile.TemporaryDirectory(prefix="siptwin-bench-") as tmp:
        twin = EmbeddedTwin(TwinConfig(state_dir=Path(tmp), api_port=free_port(),
                                       dns_port=free_port(), tls=False))
        await twin.start()
        try:
            client = sdk_client(twin.api_url, twin.account_sid, twin.auth_token)
            await asyncio.to_thread(provision, client, DomainPlan(
                LABEL, voice_url=voice_url, credentials=[(USER, PASSWORD)]))
            yield twin
        finally:
            await twin.stop()


async def run(calls: int, profile: Path | None, memory: bool, voice_url: str,
              sipp_shaped: bool = True, in_flight: int = 1, idle_gap: float = 0.0,
              idle_after: float = 0.0, census: int = 0, gc_passes: bool = False,
              retained: bool = False) -> float:
    async with provisioned_twin(voice_url) as twin:
        node = twin.nodes["us1"]
        board = Switchboard(node) if in_flight > 1 else None
        callers = [Caller(node, sipp_shaped=sipp_shaped, board=board)
                   for _ in range(in_flight)]
        caller = callers[0]
        settle_for_serving()  # as `siptwin up` does once ready
        for n in range(50):  # warm up: caches, first imports
            await caller.call(n)
        rss_before = rss_mb()
        print(memory_line("idle after start and 50 calls"))
        tracked_before = tracked_census() if census else None
        retained_before = retained_sizes(node) if retained else None
        if memory:
            tracemalloc.start(3)
            idle = tracemalloc.take_snapshot()
        caller.caller_cpu = 0.0

        async def place(first: int, every: int, who: Caller) -> None:
            for n in range(first, 1000 + calls, every):
                await who.call(n)
                if idle_gap:
                    await asyncio.sleep(idle_gap)  # the loop waits in its selector

        passes = CollectorPasses() if gc_passes else None
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        began_cpu, began_wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(place(1000 + k, in_flight, who)
                               for k, who in enumerate(callers)))
        cpu = time.process_time() - began_cpu
        wall = time.perf_counter() - began_wall
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        if passes:
            passes.stop()
        node_cpu = cpu - sum(who.caller_cpu for who in callers)
        print(f"{calls} calls in {wall:.2f} s; node CPU {node_cpu * 1e3 / calls:.3f} ms per "
              f"call (caller {(cpu - node_cpu) * 1e3 / calls:.3f} ms per call excluded)"
              f" -> at most {calls / node_cpu:.0f} calls/s on one core")
        print(f"transactions alive: {len(twin.nodes['us1'].layer)}; call records: "
              f"{len(twin.calls.all())}; VmRSS {rss_before:.1f} -> {rss_mb():.1f} MB")
        print(memory_line("right after the calls"))
        if passes:
            passes.print()
        if tracked_before is not None:
            print_census(tracked_before, tracked_census(), calls, census)
        if retained_before is not None:
            gc.collect()
            print_retained(retained_before, retained_sizes(node), calls)
        if idle_after:
            # The calls' finished transactions end on their timers meanwhile (Timer I
            # 5 s after each ACK of a 407, Timers J and L 32 s after the calls).
            began_cpu = time.process_time()
            await asyncio.sleep(idle_after)
            print(f"idle {idle_after:g} s after the calls: "
                  f"{(time.process_time() - began_cpu) * 1e3 / idle_after:.1f} ms CPU a "
                  f"second; transactions alive: {len(node.layer)}")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--profile", type=Path, help="write cProfile data of the measured calls")
    parser.add_argument("--memory", action="store_true",
                        help="trace allocations (slower: timers expire sooner than at full speed) and "
                             "print the top 25 growths by traceback, idle to after the calls")
    parser.add_argument("--app", default="pause", help="comma-separated: " + ", ".join(APPS))
    parser.add_argument("--datagrams", choices=("sipp", "plain"), default="sipp",
                        help="sipp: as SIPp sends them in bench/sipp_load.py (Via rport, a "
                             "source port per call); plain: bench/sip_path.py's, one port")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="calls in progress at once, their datagrams interleaved one by "
                             "one (SIPp at 500 calls/s has ~50 in flight); 1: one call at a time")
    parser.add_argument("--idle-gap-ms", type=float, default=0.0,
                        help="milliseconds each caller waits after a call, with the event loop "
                             "idle in its selector (as a twin below saturation waits between "
                             "datagrams); 0: calls back to back")
    parser.add_argument("--idle-after", type=float, default=0.0, metavar="SECONDS",
                        help="then idle this long and print the CPU a second it costs (the "
                             "calls' transactions ending on their timers: try 8)")
    parser.add_argument("--census", type=int, default=0, metavar="TOP",
                        help="count the objects the cyclic collector tracks, by type, after "
                             "warm-up and right after the calls (each after gc.collect()), and "
                             "print the TOP types grown most: what the calls leave alive for "
                             "every collector pass to walk")
    parser.add_argument("--gc-passes", action="store_true",
                        help="time the cyclic collector's passes during the calls (CPU ms per "
                             "generation, longest, objects walked)")
    parser.add_argument("--retained", action="store_true",
                        help="print what each attribute of the node keeps per call (deep "
                             "sizes after warm-up and right after the calls, diffed)")
    args = parser.parse_args()
    results = {}
    for app in args.app.split(","):
        print(f"== app {app}: {APPS[app]}")
        profile = args.profile.with_suffix(f".{app}.prof") if args.profile and "," in args.app \
            else args.profile
        # On the loop `siptwin up` serves on (uvloop when installed, as SIPTWIN_EVENT_LOOP
        # says), so that a change that only pays on asyncio's pure-Python loop shows as none.
        results[app] = run_event_loop(run(args.calls, profile, args.memory, APPS[app],
                                       args.datagrams == "sipp", args.in_flight,
                                       args.idle_gap_ms / 1000, args.idle_after,
                                       args.census, args.gc_passes, args.retained))
    if len(results) > 1:
        print("node CPU per call: " + "; ".join(f"{app} {ms:.3f} ms" for app, ms in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
