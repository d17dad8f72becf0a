"""CPU per refused call inside one region node, next to a completed call's.

Run: python bench/refusal.py [--calls 3000] [--completed 1000] [--retransmit 0.2]
                             [--action reject|drop] [--profile out.prof]

Issue 18 asks an overloaded node, offered twice what it completes, to go on completing 90 %
of that: at ~1,000 calls/s a core, refusing the other ~1,000 a second may then cost about
0.13 ms each, all its datagrams together. This measures that cost without sockets or SIPp.

The embedded twin starts in this process and a domain is provisioned as in bench/call_path.py.
First ``--completed`` calls of SIPp's uac_auth flow complete (bench/call_path.py's Caller),
for the CPU of a completed call on the same twin. Then the us1 node's guard is made to refuse
every new call by datagram (its admission rate set to zero, its ticks stopped; the datagrams'
wait is 0, so only the rate refuses them), and ``--calls`` new calls arrive as SIPp sends them
with ``-t u1`` (one source port, Via with ``rport``): the INVITE; with ``--retransmit`` share,
that INVITE again (a retransmission sent before the 503 arrived); then the ACK SIPp sends for
a final response it did not expect (Via, From, To with the 503's tag, Call-ID, CSeq of the
INVITE). They come in batches of ``--batch`` calls: a batch's INVITEs, then its ACKs, each
feed timed in process CPU; building the ACKs is the caller's work and is not counted.

Not counted either: the socket (bench/udp_receive.py measures a datagram's read, and a reply's
send, alone: add two reads and a send per refused call, three reads with a retransmission),
and the event loop's wake-ups. ``--sipp RATE`` counts them: after the completed calls, real
SIPp (harness/sipp/uac_auth.xml, ``-t u1``) offers RATE new calls a second for ``--seconds``
to the us1 node, all refused, and the process's CPU time (user + system, the kernel's share
of the sockets included) over those calls, less what the idle twin costs in as long (its
timers, measured for 2 s before), is printed per refused call.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from siptwin.runtime import settle_for_serving
from siptwin.transport.endpoint import Source

sys.path.insert(0, str(Path(__file__).resolve().parent))
from call_path import SIPP_SDP, Caller, provisioned_twin, sipp_request  # noqa: E402
from sip_path import DOMAIN  # noqa: E402
from sipp_load import APPS, SCENARIO, sipp_argv  # noqa: E402

PORT = 5070  # SIPp -t u1: every call from one source port
_HEADER = re.compile(rb"\r\n(Via|From|To|Call-ID): ([^\r]+)")


def sipp_ack(refusal: bytes) -> bytes:
    """The ACK SIPp sends when a call's INVITE gets a final response the scenario did not
    expect: the response's Via, From, To (with its tag) and Call-ID, the INVITE's CSeq."""
    found = dict(_HEADER.findall(refusal))
    return (f"ACK sip:1000@{DOMAIN} SIP/2.0\r\n"
            f"Via: {found[b'Via'].decode()}\r\nFrom: {found[b'From'].decode()}\r\n"
            f"To: {found[b'To'].decode()}\r\nCall-ID: {found[b'Call-ID'].decode()}\r\n"
            f"CSeq: 1 ACK\r\nContact: <sip:sipp@127.0.0.1:{PORT};transport=UDP>\r\n"
            f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


async def run(args: argparse.Namespace) -> None:
    async with provisioned_twin(APPS[args.app]) as twin:
        twin.set_fidelity(twin.fidelity.with_overrides({"overload_action": args.action}))
        node = twin.nodes["us1"]
        caller = Caller(node)
        settle_for_serving()
        for n in range(50):  # warm up
            await caller.call(n)
        began = time.process_time()
        for n in range(1000, 1000 + args.completed):
            await caller.call(n)
        completed_ms = ((time.process_time() - began - caller.caller_cpu) * 1e3
                        / max(1, args.completed))

        # Every new call by datagram refused: no tokens, and no tick to give any.
        if node._overload_timer is not None:
            node._overload_timer.cancel()
        guard = node.overload
        guard.admission.rate, guard.admission.tokens = 0.0, 0.0
        if not node.endpoint.datagrams_wait_visibly:
            raise SystemExit("the UDP receive buffer is small (not root?): datagrams are "
                             "not judged by their wait, and the guard would not shed them")
        if args.sipp:
            await refused_by_sipp(node, args, completed_ms)
            return
        caller.sent.clear()
        sent: list[bytes] = []
        node.endpoint.send_now = lambda data, hop: sent.append(data)  # type: ignore[method-assign]
        source = Source("udp", "127.0.0.1", PORT, node.region.address, 5060)
        on_bytes = node._on_bytes
        to = f"<sip:1000@{DOMAIN}>"
        every = round(1 / args.retransmit) if args.retransmit > 0 else 0
        profiler = cProfile.Profile() if args.profile else None

        def fed(datagrams: list[bytes]) -> float:
            """The node's CPU seconds for taking ``datagrams`` in (profiled with --profile)."""
            if profiler:
                profiler.enable()
            began = time.process_time()
            for data in datagrams:
                on_bytes(data, source)
            spent = time.process_time() - began
            if profiler:
                profiler.disable()
            return spent

        invite_cpu = ack_cpu = 0.0
        datagrams = 0
        shed_before, parsed_before = guard.shed_before_parsing, guard.shed
        gc.collect()
        tracked_before = len(gc.get_objects())
        collections_before = sum(s["collections"] for s in gc.get_stats())
        for first in range(100_000, 100_000 + args.calls, args.batch):
            numbers = range(first, min(first + args.batch, 100_000 + args.calls))
            invites = [sipp_request("INVITE", n, PORT, "1", 1, to, body=SIPP_SDP)
                       for n in numbers]
            if every:
                invites = [d for k, invite in enumerate(invites)
                           for d in ((invite, invite) if k % every == 0 else (invite,))]
            sent.clear()
            invite_cpu += fed(invites)
            datagrams += len(invites)
            if args.action == "drop":
                continue
            refusals = {}
            for data in sent:  # (a retransmission's 503 repeats the first one)
                refusals[_HEADER.search(data, data.find(b"\r\nCall-ID:")).group(2)] = data
            acks = [sipp_ack(r) for r in refusals.values()]
            if len(acks) != len(numbers) or not all(s.startswith(b"SIP/2.0 503") for s in sent):
                raise SystemExit(f"expected {len(numbers)} refusals, got {len(acks)}: "
                                 f"{sent[:1]!r}")
            ack_cpu += fed(acks)
            datagrams += len(acks)
        collections = sum(s["collections"] for s in gc.get_stats()) - collections_before
        gc.collect()
        tracked = len(gc.get_objects()) - tracked_before
        calls = args.calls
        refused_ms = (invite_cpu + ack_cpu) * 1e3 / calls
        print(f"completed call: {completed_ms:.3f} ms CPU ({args.completed} calls, "
              f"app {args.app})")
        print(f"refused call ({args.action}): {refused_ms:.4f} ms CPU = INVITE(s) "
              f"{invite_cpu * 1e3 / calls:.4f} + ACK {ack_cpu * 1e3 / calls:.4f} "
              f"({calls} calls, {datagrams} datagrams, {datagrams / calls:.2f} a call; "
              f"{refused_ms / completed_ms:.3f} of a completed call)")
        print(f"shed before parsing: {guard.shed_before_parsing - shed_before} of "
              f"{guard.shed - parsed_before}; ACKs awaited still: {len(guard.refused)}; "
              f"collector passes during the refusals: {collections}; objects the "
              f"collector tracks, after against before: {tracked:+d}; "
              f"transactions alive: {len(node.layer)}")
        if profiler:
            profiler.dump_stats(args.profile)


async def refused_by_sipp(node, args: argparse.Namespace, completed_ms: float) -> None:
    """SIPp offers ``args.sipp`` new calls a second, every one of which the node refuses."""
    guard = node.overload
    del node.endpoint.send_now  # the Caller's capture: replies go out on the socket again
    host, port = node.endpoint.udp_address
    calls = int(args.sipp * args.seconds)
    with tempfile.TemporaryDirectory(prefix="siptwin-refusal-sipp-") as work:
        argv = sipp_argv(host, port, "us1", args.sipp, calls, calls, SCENARIO)
        shed, absorbed_before = guard.shed, len(guard.refused)
        # What the twin costs idle (its timers, the media clock): subtracted below.
        usage, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.sleep(2.0)
        after = resource.getrusage(resource.RUSAGE_SELF)
        idle = ((after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)) \
            / (time.perf_counter() - began)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        proc = await asyncio.to_thread(subprocess.run, argv, cwd=work, capture_output=True,
                                       text=True, timeout=300)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
        stat = Path(work) / "stat.csv"
        rows = stat.read_text().splitlines() if stat.exists() else []
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime) - idle * wall
    system = after.ru_stime - usage.ru_stime
    refused = guard.shed - shed
    retrans = "?"
    if len(rows) > 1:
        header, last = rows[0].split(";"), rows[-1].split(";")
        retrans = last[header.index("Retransmissions(C)")]
    print(f"completed call: {completed_ms:.3f} ms CPU ({args.completed} calls, app {args.app})")
    print(f"SIPp offered {calls} calls at {args.sipp}/s (exit {proc.returncode}, {wall:.1f} s, "
          f"{retrans} retransmissions): {refused} INVITEs refused ({args.action}), ACKs "
          f"awaited at the end {len(guard.refused) - absorbed_before:+d}")
    print(f"refused call under SIPp: {cpu * 1e3 / max(1, calls):.4f} ms CPU a call "
          f"(system {system * 1e3 / max(1, calls):.4f}); {cpu:.2f} s in {wall:.1f} s "
          f"({cpu / wall:.2f} of a core; the idle twin's {idle * 1e3:.1f} ms a second "
          f"subtracted); the process was preempted {after.ru_nivcsw - usage.ru_nivcsw} times, "
          f"and waited {after.ru_nvcsw - usage.ru_nvcsw} times")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="refused calls")
    parser.add_argument("--completed", type=int, default=1000, help="completed calls first")
    parser.add_argument("--batch", type=int, default=500, help="calls whose INVITEs arrive "
                        "before their ACKs (at most the ACKs the guard remembers)")
    parser.add_argument("--retransmit", type=float, default=0.0, metavar="SHARE",
                        help="share of refused INVITEs that arrive twice (0-1)")
    parser.add_argument("--action", choices=("reject", "drop"), default="reject")
    parser.add_argument("--app", default="pause", choices=sorted(APPS))
    parser.add_argument("--profile", type=Path, help="write cProfile data of the refusals")
    parser.add_argument("--sipp", type=int, default=0, metavar="RATE",
                        help="instead: SIPp offers RATE new calls a second, all refused")
    parser.add_argument("--seconds", type=float, default=5.0, help="with --sipp")
    args = parser.parse_args()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
