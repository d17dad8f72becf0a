"""SIPp drives the authenticated call flow against one region node of a twin in a subprocess.

Run: python bench/sipp_load.py [--rates 100,200,300,400,600,800,1000,1200] [--seconds 5]
                              [--app pause,say]

The twin is ``python -m siptwin up`` with all eight regions (so the memory figure is the
embedded twin as users start it), in its own process; this script provisions it through the
official twilio SDK (a domain with a credential list and, as its voice_url, the app: ``pause``
static TwiML, ``say`` the seed's twimlets message URL; each app in a fresh twin), runs
SIPp (harness/sipp/uac_auth.xml over UDP: INVITE, 407, ACK, INVITE with credentials, 100,
180, 200, ACK, BYE, 200) against us1 only, at each rate for a fixed number of seconds. A rate
passes when SIPp exits 0 with 0 failed calls, every call it was asked for succeeded, and it
achieved at least 90 % of the rate (a saturated twin completes its calls late, through
retransmissions, but does not sustain the rate). ``--workers N`` starts ``siptwin up
--workers N`` and has SIPp send from ``--sources`` loopback addresses (default 64; ``-t ui``,
a socket per address) so that SO_REUSEPORT spreads the calls over the workers, as calls from
many PBXs spread; ``--sources 64`` does the same with one worker, so that 1 and N workers meet
the same client. Each rate also prints the CPU seconds of every twin process (parent first) and SIPp's.

It prints (and writes as JSON with --json): per rate the calls, failures, retransmissions,
achieved calls/s, setup-time percentiles and the twin's CPU time per call; the highest rate
with 0 failed calls and its p99 setup time; VmRSS of the twin idle (eight regions, before
provisioning), right after the run, and after --settle seconds (once the 32 s transaction
timers have let go of the last calls' messages).

Setup time is SIPp's response time of the 200 (``rtd="true"``): from the scenario's first
INVITE - through the 407, the ACK and the INVITE with credentials - to the 200, in SIPp's
millisecond clock.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "harness" / "sipp" / "uac_auth.xml"
READY = "siptwin ready"
USER, PASSWORD = "alice", "Harbour7Lights"
LABEL = "bench"
# Static TwiML answered inside the twin (no webhook server): the first <Pause> answers the call
# and holds it until SIPp's BYE.
TWIML = 'twiml:<Response><Pause length="60"/></Response>'
# The seed's own example application: Twilio's "message" twimlet saying one sentence (answered
# inside the twin, offline), so every call streams <Say> audio until SIPp's BYE.
SEED_SAY = ("http://twimlets.com/message?Message%5B0%5D=Hello%2C%20you%20have%20reached%20"
            "the%20SIP%20domain.%20Please%20hold%20while%20we%20connect%20your%20call.")
APPS = {"pause": TWIML, "say": SEED_SAY}


@dataclass
class RateResult:
    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    exit_code: int
    wall_s: float
    achieved_cps: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    twin_cpu_ms_per_call: float | None = None  # utime+stime of the twin / successful calls
    sipp_cpu_ms_per_call: float | None = None  # the same for SIPp (it shares the two cores)
    sipp_cpu_s: float = 0.0
    twin_user_ms_per_call: float | None = None  # of the first twin process only
    twin_system_ms_per_call: float | None = None
    # times the first twin process's main thread went to sleep and was woken (its voluntary
    # context switches) per call: each is an event-loop wake-up, with its selector call
    twin_wakeups_per_call: float | None = None
    cpu_s_by_process: list[float] = field(default_factory=list)  # twin parent, then workers
    # of the failed calls: answered by a response the flow does not expect (an overloaded
    # twin's 503), and timed out waiting (calls taken that did not complete: retransmissions
    # unanswered, or an answer that came after SIPp gave up)
    failed_unexpected: int = 0
    failed_timeout: int = 0

    @property
    def passed(self) -> bool:
        # Every call set up, and at the rate asked for: a twin that falls behind still
        # completes its calls (late, through retransmissions) but does not sustain the rate.
        return (self.exit_code == 0 and self.failed == 0 and self.successful == self.calls
                and self.achieved_cps >= 0.9 * self.rate)


@dataclass
class Report:
    rates: list[RateResult] = field(default_factory=list)
    rss_idle_kb: int = 0
    rss_after_kb: int = 0
    rss_peak_kb: int = 0
    rss_settled_kb: int = 0
    scenario: str = ""
    settle_s: float = 0.0
    best_rate: int | None = None
    best_p99_ms: float | None = None
    command: str = ""
    app: str = ""
    machine: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return asdict(self) | {"rates": [asdict(r) | {"passed": r.passed} for r in self.rates]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    return sum(user_system_seconds(pid))


def user_system_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def pin(pids: list[int], cpus: set[int]) -> None:
    """Keep processes (every thread of each; threads they start later inherit it) on ``cpus``."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), cpus)


def proc_status(pid: int, key: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process has ended
        return 0
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB, or a count
    return 0


class TwinProcess:
    """``siptwin up`` in a subprocess; its banner gives the account credentials."""

    def __init__(self, state: Path, regions: str | None, workers: int = 1,
                 extra: list[str] | None = None, profile: Path | None = None) -> None:
        self.api_port, self.dns_port = free_port(), free_port()
        # The auth token reaches a terminal only; a pipe gets it through --token-file.
        self.token_file = state.parent / "auth-token"
        # With a profile: bench/twin_profiled.py, which profiles between SIGUSR1 and SIGUSR2.
        launcher = ([str(ROOT / "bench" / "twin_profiled.py"), str(profile)] if profile
                    else ["-m", "siptwin"])
        self.argv = [sys.executable, *launcher, "up", "--state", str(state),
                     "--api-port", str(self.api_port), "--dns-port", str(self.dns_port),
                     "--token-file", str(self.token_file)]
        if regions:
            self.argv += ["--regions", regions]
        if workers > 1:
            self.argv += ["--workers", str(workers)]
        self.argv += extra or []
        self.proc: subprocess.Popen[str] | None = None
        self.banner: list[str] = []
        self.ready_after = 0.0
        self.log: Path | None = None

    def start(self) -> None:
        began = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.banner.append(line.rstrip())
            if line.startswith(READY):
                self.ready_after = time.perf_counter() - began
                # Whatever the twin prints from now on goes on being read (into twin.log
                # beside the state): a pipe nobody reads would block it once full.
                self.log = self.token_file.parent / "twin.log"
                threading.Thread(target=_copy_lines, args=(self.proc.stdout, self.log),
                                 daemon=True).start()
                return
        raise RuntimeError("siptwin up exited before ready:\n" + "\n".join(self.banner))

    def value(self, prefix: str) -> str:
        if prefix == "TWILIO_AUTH_TOKEN":
            return self.token_file.read_text().strip()
        return next(line.split("=", 1)[1] for line in self.banner if line.startswith(prefix))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """The parent and, with --workers, the worker processes (from the banner)."""
        for line in self.banner:
            if line.startswith("workers:") and "(pids " in line:
                listed = line.split("(pids ", 1)[1].split(")", 1)[0]
                return [int(p) for p in listed.split(", ")]
        return [self.pid]

    def exited(self) -> str | None:
        """None while the twin runs; else its exit status and the end of what it printed."""
        if self.proc is None or self.proc.poll() is None:
            return None
        tail = self.log.read_text(errors="replace").splitlines()[-20:] if self.log else []
        return f"exit status {self.proc.returncode}\n" + "\n".join(tail)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)  # (its output is read by the copying thread)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _copy_lines(stream: IO[str], path: Path) -> None:
    with path.open("w") as out:
        for line in stream:
            out.write(line)
            out.flush()


def node_address(banner: list[str], region: str) -> tuple[str, int]:
    for line in banner:
        fields = line.split()
        if fields and fields[0] == region:
            return fields[2], int(fields[3])
    raise RuntimeError(f"region {region} not in the banner")


def provision_domain(api_url: str, sid: str, token: str, voice_url: str) -> None:
    from siptwin.harness.provision import DomainPlan, provision, sdk_client

    provision(sdk_client(api_url, sid, token),
              DomainPlan(LABEL, voice_url=voice_url, credentials=[(USER, PASSWORD)]))


def sipp_argv(host: str, port: int, region: str, rate: int, calls: int, limit: int,
              scenario: Path = SCENARIO, sources: Path | None = None,
              account: tuple[str, str, str] | None = None) -> list[str]:
    """``account``: (domain, user, password) of another server (bench/versus_kamailio.py).
    ``sources``: an injection file of local addresses (:func:`write_sources`)."""
    domain, user, password = account or (f"{LABEL}.sip.{region}.twilio.com", USER, PASSWORD)
    # -t ui: one socket per local address of the injection file, calls taking them in turn,
    # so that SO_REUSEPORT (which hashes the source address and port) spreads the calls over
    # the twin's worker processes. A socket per call (-t un) spreads them too, but costs SIPp
    # about half as much again per call, on the cores the twin needs.
    transport = (["-t", "ui", "-inf", str(sources), "-ip_field", "0", "-max_socket", "1000"]
                 if sources is not None else ["-t", "u1", "-i", "127.0.0.1"])
    return ["sipp", f"{host}:{port}", "-sf", str(scenario), *transport,
            "-key", "domain", domain, "-s", "1000",
            "-au", user, "-ap", password, "-auth_uri", f"1000@{domain}",
            "-p", "0", "-r", str(rate), "-m", str(calls), "-l", str(limit),
            "-recv_timeout", "5s", "-timeout", "120s", "-nostdin",
            "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_rtt", "-rtt_freq", "1", "-trace_err"]


def write_sources(directory: Path, count: int) -> Path:
    """SIPp's injection file of ``count`` loopback source addresses (127.0.0.1 up): 127/8 is
    the loopback interface's in every network namespace, so each can be bound as it is."""
    if not 1 <= count <= 250:
        raise ValueError("--sources: 1 to 250 addresses")
    path = directory / "sources.csv"
    path.write_text("SEQUENTIAL\n" + "".join(f"127.0.0.{n};\n" for n in range(1, count + 1)))
    return path


def run_rate(host: str, port: int, region: str, rate: int, seconds: float, limit: int,
             work: Path, scenario: Path, sources: int = 0,
             account: tuple[str, str, str] | None = None,
             cpus: set[int] | None = None) -> RateResult:
    """``cpus``: the CPUs SIPp may run on (all when None)."""
    calls = int(rate * seconds)
    run_dir = work / f"rate-{rate}"
    run_dir.mkdir()
    argv = sipp_argv(host, port, region, rate, calls, limit, scenario,
                     write_sources(run_dir, sources) if sources else None, account)
    began = time.perf_counter()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, cwd=run_dir, capture_output=True, text=True, timeout=300,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    wall = time.perf_counter() - began
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = (children.ru_utime - children_before.ru_utime
                + children.ru_stime - children_before.ru_stime)
    successful = failed = retrans = unexpected = timeout = 0
    stat = run_dir / "stat.csv"
    if stat.exists():
        rows = list(csv.reader(stat.read_text().splitlines(), delimiter=";"))
        header, last = rows[0], rows[-1]
        col = {name: i for i, name in enumerate(header)}
        successful = int(last[col["SuccessfulCall(C)"]])
        failed = int(last[col["FailedCall(C)"]])
        retrans = int(last[col["Retransmissions(C)"]])
        if "FailedUnexpectedMessage(C)" in col:
            unexpected = int(last[col["FailedUnexpectedMessage(C)"]] or 0)
        timeout = sum(int(last[col[name]] or 0) for name in
                      ("FailedTimeoutOnRecv(C)", "FailedMaxUDPRetrans(C)", "FailedTimeoutOnSend(C)")
                      if name in col)
    times = sorted(_rtt_values(run_dir))
    return RateResult(rate, calls, successful, failed, retrans, proc.returncode, round(wall, 2),
                      round(successful / wall, 1) if wall else 0.0,
                      _pct(times, 0.50), _pct(times, 0.99), times[-1] if times else None,
                      sipp_cpu_ms_per_call=round(sipp_cpu * 1000 / successful, 2)
                      if successful else None, sipp_cpu_s=round(sipp_cpu, 2),
                      failed_unexpected=unexpected, failed_timeout=timeout)


def _rtt_values(run_dir: Path) -> list[float]:
    out: list[float] = []
    for path in run_dir.glob("*_rtt.csv"):
        for row in csv.reader(path.read_text().splitlines(), delimiter=";"):
            if len(row) >= 2 and row[0][:1].isdigit():
                out.append(float(row[1]))
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, int(round(q * len(values) + 0.5)) - 1))
    return round(values[index], 2)


def interpreter_command() -> str:
    """How to name this interpreter in a reproduce line: the checkout's .venv as a relative
    path (what a user of the README has), any other by its path."""
    try:
        return str(Path(sys.executable).relative_to(ROOT))
    except ValueError:
        return sys.executable


def machine() -> dict[str, str]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout
    # Which interpreter runs the twin (sys.executable, see TwinProcess): the same version
    # built with profile-guided optimisation (a distribution's) or without it (pyenv's
    # default) differs by about a tenth in CPU per call.
    interpreter = os.path.realpath(sys.executable)
    return {"nproc": str(os.cpu_count()), "cpu": model,
            "python": f"{platform.python_version()} ({interpreter})",
            "sipp": next((w for w in sipp.split() if w.startswith("v3")), "?")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,300,400,600,800,1000,1200")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each rate step")
    parser.add_argument("--limit", type=int, default=2000, help="SIPp -l: calls in flight")
    parser.add_argument("--region", default="us1", help="the one node SIPp calls")
    parser.add_argument("--regions", default=None, help="siptwin up --regions (default: all 8)")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before VmRSS")
    parser.add_argument("--settle", type=float, default=35.0,
                        help="seconds after the run before the settled VmRSS (0: skip)")
    parser.add_argument("--app", default="pause",
                        help="comma-separated apps, each in a fresh twin: pause (<Pause "
                             "length=60>), say (the seed's twimlets message, a <Say>)")
    parser.add_argument("--voice-url", default=None,
                        help="the domain's voice_url (overrides --app)")
    parser.add_argument("--workers", type=int, default=1,
                        help="siptwin up --workers (SIPp then sends from --sources addresses)")
    parser.add_argument("--sources", type=int, default=None,
                        help="SIPp sends from this many loopback addresses, a socket each "
                             "(-t ui; default 64 with --workers > 1, else one socket): give "
                             "it with one worker to compare 1 and N under the same client")
    parser.add_argument("--keep-going", action="store_true", help="run rates past a failure")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--py-spy", type=Path, metavar="FILE",
                        help="sample the twin with py-spy during the run (collapsed stacks)")
    parser.add_argument("--profile-twin", type=Path, metavar="FILE",
                        help="cProfile the twin (one process) during the rates, start-up and "
                             "provisioning left out (bench/twin_profiled.py): FILE, and the "
                             "collector's passes in FILE.gc.json")
    args = parser.parse_args(argv)
    command = f"{interpreter_command()} bench/sipp_load.py " + shlex.join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a)
    apps = ({"custom": args.voice_url} if args.voice_url
            else {name: APPS[name] for name in args.app.split(",")})
    reports = {name: run_app(name, url, args, command) for name, url in apps.items()}
    if len(reports) > 1:
        print("\nCPU per call by app (twin utime+stime / successful calls):")
        for name, report in reports.items():
            cpu = [r.twin_cpu_ms_per_call for r in report.rates if r.twin_cpu_ms_per_call]
            print(f"  {name:>6}: {', '.join(f'{c:.2f}' for c in cpu)} ms; highest clean rate "
                  f"{report.best_rate} calls/s")
    if args.json:
        args.json.write_text(json.dumps({name: report.as_json() for name, report in
                                         reports.items()}, indent=2))
    return 0


def run_app(app: str, voice_url: str, args: argparse.Namespace, command: str) -> Report:
    rates = [int(r) for r in args.rates.split(",")]
    print(f"== app {app}: voice_url {voice_url}")

    report = Report(command=command, app=app)
    with tempfile.TemporaryDirectory(prefix="siptwin-bench-") as tmp:
        work = Path(tmp)
        scenario = SCENARIO
        report.scenario = str(SCENARIO.relative_to(ROOT))
        profile = args.profile_twin.resolve() if args.profile_twin else None
        twin = TwinProcess(work / "state", args.regions, args.workers, profile=profile)
        twin.start()
        try:
            api_url = f"http://127.0.0.1:{twin.api_port}"
            time.sleep(args.idle)
            report.rss_idle_kb = sum(proc_status(pid, "VmRSS") for pid in twin.pids)
            provision_domain(api_url, twin.value("TWILIO_ACCOUNT_SID"),
                             twin.value("TWILIO_AUTH_TOKEN"), voice_url)
            host, port = node_address(twin.banner, args.region)
            print(f"twin pid {twin.pid} ready in {twin.ready_after:.2f} s; idle VmRSS "
                  f"{report.rss_idle_kb / 1024:.1f} MB; SIPp -> {args.region} {host}:{port}")
            print(f"scenario: {SCENARIO.relative_to(ROOT)}")
            print(f"{'rate':>6} {'calls':>6} {'ok':>6} {'failed':>6} {'retrans':>7} "
                  f"{'cps':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'cpu ms/call':>11} "
                  f"{'sipp ms/call':>12}")
            sampler = start_sampler(twin.pid, args.py_spy) if args.py_spy else None
            sources = args.sources if args.sources is not None else (
                64 if args.workers > 1 else 0)
            for rate in rates:
                cpu_before = [cpu_seconds(pid) for pid in twin.pids]
                user_before, system_before = user_system_seconds(twin.pid)
                sleeps_before = proc_status(twin.pid, "voluntary_ctxt_switches")
                if profile:
                    os.kill(twin.pid, signal.SIGUSR1)
                result = run_rate(host, port, args.region, rate, args.seconds, args.limit, work,
                                  scenario, sources=sources)
                if profile:
                    os.kill(twin.pid, signal.SIGUSR2)
                if result.successful:
                    spent = [after - before for before, after in
                             zip(cpu_before, (cpu_seconds(pid) for pid in twin.pids), strict=True)]
                    result.twin_cpu_ms_per_call = round(sum(spent) * 1000 / result.successful, 2)
                    result.cpu_s_by_process = [round(s, 2) for s in spent]
                    user, system = user_system_seconds(twin.pid)
                    result.twin_user_ms_per_call = round((user - user_before) * 1000
                                                         / result.successful, 3)
                    result.twin_system_ms_per_call = round((system - system_before) * 1000
                                                           / result.successful, 3)
                    sleeps = proc_status(twin.pid, "voluntary_ctxt_switches") - sleeps_before
                    result.twin_wakeups_per_call = round(sleeps / result.successful, 2)
                report.rates.append(result)
                print(f"{rate:>6} {result.calls:>6} {result.successful:>6} {result.failed:>6} "
                      f"{result.retransmissions:>7} {result.achieved_cps:>7} "
                      f"{_fmt(result.p50_ms)} {_fmt(result.p99_ms)} {_fmt(result.max_ms)} "
                      f"{_fmt(result.twin_cpu_ms_per_call, 11)} "
                      f"{_fmt(result.sipp_cpu_ms_per_call, 12)}"
                      f"{'' if result.passed else f'  FAILED (exit {result.exit_code})'}"
                      f"  cpu s: twin {result.cpu_s_by_process}, sipp {result.sipp_cpu_s}"
                      f"; twin (first process) ms/call user {result.twin_user_ms_per_call}"
                      f" system {result.twin_system_ms_per_call}"
                      f", wake-ups/call {result.twin_wakeups_per_call}",
                      flush=True)
                ended = twin.exited()
                if ended is not None:
                    print(f"the twin ended during the step: {ended}")
                    break
                if result.passed:
                    report.best_rate, report.best_p99_ms = rate, result.p99_ms
                elif not args.keep_going:
                    break
                time.sleep(1.0)  # let the twin drain timers between steps
            if sampler is not None:
                stop_sampler(sampler)
                print(f"py-spy samples: {args.py_spy}\n" + hot_functions(args.py_spy))
            report.rss_after_kb = sum(proc_status(pid, "VmRSS") for pid in twin.pids)
            report.rss_peak_kb = sum(proc_status(pid, "VmHWM") for pid in twin.pids)
            if args.settle > 0:
                time.sleep(args.settle)
                report.rss_settled_kb = sum(proc_status(pid, "VmRSS") for pid in twin.pids)
                report.settle_s = args.settle
        finally:
            twin.stop()

    info = machine()
    print(f"\nmachine: {info['nproc']} x {info['cpu']}, Python {info['python']}, "
          f"SIPp {info['sipp']}")
    print(f"highest rate with 0 failed calls: {report.best_rate} calls/s "
          f"(p99 setup {report.best_p99_ms} ms)")
    print(f"twin VmRSS, 8 regions idle: {report.rss_idle_kb / 1024:.1f} MB; right after the "
          f"run: {report.rss_after_kb / 1024:.1f} MB (peak {report.rss_peak_kb / 1024:.1f} MB)"
          + (f"; {report.settle_s:.0f} s later: {report.rss_settled_kb / 1024:.1f} MB"
             if report.settle_s else ""))
    print(f"reproduce: {report.command}")
    report.machine = info
    return report


def start_sampler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    native = ["--native"] if os.environ.get("SIPTWIN_PYSPY_NATIVE") else []
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "200", *native,
                             "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_sampler(sampler: subprocess.Popen[bytes]) -> None:
    sampler.send_signal(2)  # SIGINT: py-spy writes its file and exits
    try:
        sampler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        sampler.kill()


def hot_functions(collapsed: Path, top: int = 25) -> str:
    """Self time per function (the leaf frame of each collapsed stack), highest first."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    rows = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"{100 * n / total:5.1f} %  {name}" for name, n in rows)


def _fmt(value: float | None, width: int = 7) -> str:
    return f"{value:>{width}.1f}" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    raise SystemExit(main())
