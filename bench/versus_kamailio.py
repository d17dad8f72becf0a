"""The twin beside Kamailio: the same SIPp flow at rising rates against both, in one run.

Run (as root, best inside a private network namespace so nothing else holds the ports):
    unshare -n bash -c 'ip link set lo up; python bench/versus_kamailio.py'
    [--rates 200,400,600,800,1000,1500,2000] [--seconds 5] [--app pause|say] [--overload]
    [--overload-factors 1.15,2 | --overload-rate 290,500] [--twin-only] [--workers N]
    [--sources N] [--pin] [--pairs N [--pair-rate R]]

Kamailio runs bench/anchors/kamailio-auth-answer.cfg (udp:127.0.0.1:5070: a 407 to every
INVITE, the digest checked, 200 OK sent by Kamailio itself); the twin is ``siptwin up`` (one
process, pure Python, all eight regions) with a domain whose voice_url is the app (as in
bench/sipp_load.py), called on us1. SIPp runs harness/sipp/uac_auth.xml against each, rate by
rate (INVITE, 407, ACK, INVITE with credentials, 200, ACK, BYE, 200), for ``--seconds`` each.
A rate is clean when every call succeeded at >= 90 % of the rate (bench/sipp_load.py's rule).

Printed: one table - per system the highest clean rate, its CPU per call (all the system's
processes, utime + stime, over the calls of that step), resident memory (sum of PSS over its
processes, so Kamailio's shared memory counts once; and the sum of RSS) - and the ratio
twin/Kamailio. The machine's speed drifts by up to 40 % within minutes, and the climb measures
Kamailio first and the twin after it: ``--pairs N`` then runs N more steps of each at one rate
(the twin's highest clean one, or ``--pair-rate``), back to back and in alternating order
(Kamailio-twin, twin-Kamailio, ...; a steady drift cancels out over two pairs), and prints
the ratio of each pair and their median - the figure to quote for the CPU target.
``--overload`` then offers the twin multiples of its highest clean rate
(``--overload-factors``, default 2; or the fixed rates of ``--overload-rate``, so that
variants compared back to back get the same offers), one step each, and prints the calls it
completed per second of the offered window (successful calls / ``--seconds``; SIPp's own
figure, over its wall time with the tail, beside it) and as a share of its clean rate (the
overload target: at least 90 % at 2x), with retransmissions, p99 setup time, CPU per
completed call and memory after. ``--twin-only`` leaves Kamailio out. CPU time per call is
the figure to compare on a busy machine; rates need an idle one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sipp_load import (  # noqa: E402
    APPS,
    LABEL,
    PASSWORD,
    ROOT,
    SCENARIO,
    USER,
    RateResult,
    TwinProcess,
    cpu_seconds,
    interpreter_command,
    machine,
    node_address,
    pin,
    provision_domain,
    run_rate,
)

ANCHOR = ROOT / "bench" / "anchors" / "kamailio-auth-answer.cfg"
KAMAILIO = ("127.0.0.1", 5070)


def group_pids(leader: int) -> list[int]:
    """Every live process of ``leader``'s process group (Kamailio forks its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # field 5 of stat: the process group
            pids.append(int(entry.name))
    return pids


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """(sum of Pss, sum of Rss) in kB."""
    pss = rss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


@dataclass
class System:
    name: str
    host: str
    port: int
    domain: str
    user: str
    password: str
    pids: list[int] = field(default_factory=list)
    steps: list[RateResult] = field(default_factory=list)
    best: RateResult | None = None
    memory: tuple[int, int] = (0, 0)
    sources: int = 0  # SIPp's source addresses (-t ui: so SO_REUSEPORT spreads calls over workers)
    sipp_cpus: set[int] | None = None  # --pin: where SIPp runs

    def cpu(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue
        return total


class Kamailio:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # -DD: stay in the foreground (its workers are its children); -E: log to stderr.
        (self.work / "kamailio-run").mkdir(exist_ok=True)
        with open(self.work / "kamailio.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["kamailio", "-f", str(ANCHOR), "-DD", "-E", "-m", "128", "-M", "16",
                 "-Y", str(self.work / "kamailio-run")],
                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kamailio exited:\n" + (self.work / "kamailio.log").read_text())
            if len(group_pids(self.proc.pid)) > 2 and _answers_options(*KAMAILIO):
                return
            time.sleep(0.2)
        raise RuntimeError("kamailio did not come up")

    @property
    def pids(self) -> list[int]:
        assert self.proc is not None
        return group_pids(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def _answers_options(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        local = sock.getsockname()[1]
        sock.sendto((f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};"
                     f"branch=z9hG4bKprobe\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: "
                     f"<sip:{host}:{port}>\r\nCall-ID: probe@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                     f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
        try:
            return sock.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            return False


def step(system: System, rate: int, seconds: float, limit: int, work: Path,
         name: str = "") -> RateResult:
    before = system.cpu()
    run_dir = work / (name or system.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_rate(system.host, system.port, "us1", rate, seconds, limit, run_dir, SCENARIO,
                      sources=system.sources,
                      account=(system.domain, system.user, system.password),
                      cpus=system.sipp_cpus)
    if result.successful:
        result.twin_cpu_ms_per_call = round((system.cpu() - before) * 1000 / result.successful, 3)
    return result


def climb(system: System, rates: list[int], seconds: float, limit: int, work: Path) -> None:
    print(f"{system.name}: {'rate':>6} {'ok/calls':>11} {'failed':>6} {'retrans':>7} "
          f"{'achieved':>8} {'p99 ms':>7} {'cpu ms/call':>11}", flush=True)
    for rate in rates:
        result = step(system, rate, seconds, limit, work)
        system.steps.append(result)
        print(f"{system.name}: {rate:>6} {result.successful:>5}/{result.calls:<5} "
              f"{result.failed:>6} {result.retransmissions:>7} {result.achieved_cps:>8} "
              f"{result.p99_ms if result.p99_ms is not None else '-':>7} "
              f"{result.twin_cpu_ms_per_call if result.twin_cpu_ms_per_call else '-':>11}"
              f"{'' if result.passed else '  not clean'}", flush=True)
        if not result.passed:
            break
        system.best = result
        time.sleep(1.0)
    system.memory = memory_kb(system.pids)


def cpu_ratio(kamailio: RateResult, twin: RateResult) -> float:
    assert kamailio.twin_cpu_ms_per_call and twin.twin_cpu_ms_per_call  # set for a clean step
    return twin.twin_cpu_ms_per_call / kamailio.twin_cpu_ms_per_call


def compare_in_pairs(systems: list[System], count: int, rate: int | None, seconds: float,
                     limit: int, work: Path) -> list[tuple[RateResult, RateResult]]:
    """``count`` (Kamailio, twin) steps at one rate, the order alternating pair by pair; the
    pairs in which both sides completed every call."""
    kamailio, twin = systems
    rate = rate or (twin.best.rate if twin.best else None)
    if rate is None:
        print("pairs: the twin has no clean rate and --pair-rate was not given")
        return []
    pairs = []
    for index in range(count):
        order = (kamailio, twin) if index % 2 == 0 else (twin, kamailio)
        results = {}
        for system in order:
            time.sleep(1.0)
            results[system.name] = step(system, rate, seconds, limit, work,
                                        f"pair-{index}-{system.name}")
        kam, tw = results["kamailio"], results["twin"]
        clean = kam.passed and tw.passed
        print(f"pair {index + 1}/{count} at {rate} calls/s ({order[0].name} first): "
              f"Kamailio {kam.twin_cpu_ms_per_call} ms, twin {tw.twin_cpu_ms_per_call} ms per "
              f"call (p99 {tw.p99_ms} ms)"
              + (f": {cpu_ratio(kam, tw):.2f}x" if clean else ": not clean, left out"),
              flush=True)
        if clean:
            pairs.append((kam, tw))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200,400,600,800,1000,1500,2000,3000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=2000, help="SIPp -l: calls in flight")
    parser.add_argument("--app", default="pause", choices=sorted(APPS))
    parser.add_argument("--overload", action="store_true",
                        help="then offer the twin multiples of its highest clean rate")
    parser.add_argument("--overload-factors", default="2",
                        help="with --overload: the multiples of the clean rate offered, one "
                             "step each (e.g. 1.15,2: just above capacity and twice it)")
    parser.add_argument("--overload-rate", default="",
                        help="with --overload: offer these rates (comma-separated) instead of "
                             "multiples of the clean one (to compare variants back to back at "
                             "the same offers on a busy machine)")
    parser.add_argument("--twin-only", action="store_true",
                        help="leave Kamailio out (overload comparisons of the twin alone)")
    parser.add_argument("--limit-twin", action="append", default=[], metavar="NAME=VALUE",
                        help="siptwin up --limit for the twin (repeatable)")
    parser.add_argument("--settings", type=Path, help="siptwin up --settings for the twin")
    parser.add_argument("--workers", type=int, default=1,
                        help="siptwin up --workers for the twin (SIPp then sends from "
                             "--sources addresses to both systems)")
    parser.add_argument("--sources", type=int, default=None,
                        help="SIPp sends from this many loopback addresses, a socket each "
                             "(-t ui; default 64 with --workers > 1, else one socket)")
    parser.add_argument("--pairs", type=int, default=0,
                        help="then N alternated Kamailio/twin steps at one rate; prints each "
                             "pair's CPU ratio and the median")
    parser.add_argument("--pair-rate", type=int, default=None,
                        help="with --pairs: the rate (default: the twin's highest clean rate)")
    parser.add_argument("--pin", action="store_true",
                        help="each system (all its processes and threads) on CPU 0 and SIPp on "
                             "CPU 1, so that neither shares a core with the load generator, "
                             "as when the PBX is another machine (one twin process only)")
    args = parser.parse_args(argv)
    if args.pairs and args.twin_only:
        parser.error("--pairs compares with Kamailio: not with --twin-only")
    if args.pin and (args.workers > 1 or len(os.sched_getaffinity(0)) < 2):
        parser.error("--pin: one twin process and at least two CPUs")
    sources = args.sources if args.sources is not None else (64 if args.workers > 1 else 0)
    rates = [int(r) for r in args.rates.split(",")]
    command = f"{interpreter_command()} bench/versus_kamailio.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()
    load = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="siptwin-versus-") as tmp:
        work = Path(tmp)
        kamailio = Kamailio(work)
        extra = [arg for limit in args.limit_twin for arg in ("--limit", limit)]
        if args.settings:
            extra += ["--settings", str(args.settings.resolve())]
        twin = TwinProcess(work / "state", None, workers=args.workers, extra=extra)
        twin.start()
        if not args.twin_only:
            kamailio.start()
        try:
            provision_domain(f"http://127.0.0.1:{twin.api_port}", twin.value("TWILIO_ACCOUNT_SID"),
                             twin.value("TWILIO_AUTH_TOKEN"), APPS[args.app])
            host, port = node_address(twin.banner, "us1")
            systems = [
                System("kamailio", *KAMAILIO, domain="127.0.0.1", user="alice",
                       password="secret", pids=[] if args.twin_only else kamailio.pids,
                       sources=sources),
                System("twin", host, port, domain=f"{LABEL}.sip.us1.twilio.com", user=USER,
                       password=PASSWORD, pids=twin.pids, sources=sources),
            ][1 if args.twin_only else 0:]
            if args.pin:
                system_cpu, sipp_cpu = sorted(os.sched_getaffinity(0))[:2]
                for system in systems:
                    pin(system.pids, {system_cpu})
                    system.sipp_cpus = {sipp_cpu}
            for system in systems:
                step(system, 50, 1.0, args.limit, work / "warm-up")  # first imports, caches
                climb(system, rates, args.seconds, args.limit, work)
            pairs = compare_in_pairs(systems, args.pairs, args.pair_rate, args.seconds,
                                     args.limit, work) if args.pairs else []
            overloads: list[tuple[RateResult, tuple[int, int]]] = []
            twin_system = systems[-1]
            if args.overload and (twin_system.best is not None or args.overload_rate):
                offers = ([int(r) for r in args.overload_rate.split(",")]
                          if args.overload_rate else
                          [round(float(f) * twin_system.best.rate)
                           for f in args.overload_factors.split(",")])
                for offered in offers:
                    time.sleep(2.0)
                    result = step(twin_system, offered, args.seconds, args.limit, work,
                                  f"twin-overload-{offered}")
                    overloads.append((result, memory_kb(twin_system.pids)))
        finally:
            kamailio.stop()
            twin.stop()

    info = machine()
    print(f"\ncommit {commit}; machine {info['nproc']} x {info['cpu']}, Python {info['python']},"
          f" SIPp {info['sipp']}; load average before the run {load[0]:.2f}"
          f"{' (a loaded machine: compare CPU per call, not rates)' if load[0] > 0.5 else ''}")
    print(f"flow: {SCENARIO.relative_to(ROOT)}; {args.seconds:g} s per rate; twin app "
          f"{args.app}: {APPS[args.app]}")
    print("\n| system | highest clean rate | CPU ms per call | PSS MB (RSS MB) |")
    print("|---|---|---|---|")
    for system in systems:
        best = system.best
        print(f"| {system.name} | {best.rate if best else 'none'} calls/s"
              f"{f' ({best.achieved_cps}/s achieved, p99 {best.p99_ms} ms)' if best else ''} | "
              f"{best.twin_cpu_ms_per_call if best else '-'} | "
              f"{system.memory[0] / 1024:.1f} ({system.memory[1] / 1024:.1f}) |")
    kam, tw = (None, systems[0].best) if args.twin_only else (systems[0].best, systems[1].best)
    if kam and tw and kam.twin_cpu_ms_per_call and tw.twin_cpu_ms_per_call:
        print(f"\ntwin / Kamailio: CPU per call {tw.twin_cpu_ms_per_call / kam.twin_cpu_ms_per_call:.1f}x"
              f" (target <= 4x); highest clean rate {tw.rate / kam.rate:.2f}x"
              f"{' (Kamailio clean at the highest rate offered)' if kam.rate == rates[-1] else ''}")
    if kam and tw:
        same = next((r for r in systems[0].steps if r.rate == tw.rate and r.twin_cpu_ms_per_call),
                    None)
        if same is not None and tw.twin_cpu_ms_per_call:
            print(f"at the same rate ({tw.rate} calls/s): twin {tw.twin_cpu_ms_per_call} ms, "
                  f"Kamailio {same.twin_cpu_ms_per_call} ms per call: "
                  f"{tw.twin_cpu_ms_per_call / same.twin_cpu_ms_per_call:.1f}x")
    if pairs:
        ratios = [cpu_ratio(kam_step, twin_step) for kam_step, twin_step in pairs]
        print(f"\nalternated pairs at {pairs[0][0].rate} calls/s: twin / Kamailio CPU per call "
              + ", ".join(f"{twin_step.twin_cpu_ms_per_call}/{kam_step.twin_cpu_ms_per_call}"
                          for kam_step, twin_step in pairs)
              + f" ms: ratios {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {statistics.median(ratios):.2f}x (target <= 4x)")
    for overload, overload_memory in overloads:
        # Completed per second of the offered window: the calls SIPp was asked to start in
        # `seconds`, over `seconds` - what the twin served of that offer. (SIPp's own figure
        # divides by its wall time, tail included: a run whose last calls end late, or whose
        # shed calls are answered at once, would read differently for the same work.)
        window = overload.successful / args.seconds
        share = f"{window / tw.rate:.0%}" if tw else "-"
        print(f"\noverload: twin offered {overload.rate} calls/s for {args.seconds:g} s "
              f"({overload.rate / tw.rate if tw else 0:.2f}x its clean rate "
              f"{tw.rate if tw else 'none'}): completed {overload.successful}/{overload.calls}"
              f" = {window:.0f}/s over the offered window = {share} of its clean rate "
              f"(target >= 90 %; {overload.achieved_cps}/s over SIPp's wall time "
              f"{overload.wall_s} s), {overload.failed} refused or failed "
              f"({overload.failed_unexpected} answered 503 or otherwise unexpectedly, "
              f"{overload.failed_timeout} timed out), "
              f"{overload.retransmissions} retransmissions, p99 setup "
              f"{overload.p99_ms} ms, CPU {overload.twin_cpu_ms_per_call} ms per completed "
              f"call, PSS after {overload_memory[0] / 1024:.1f} MB")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
