"""Flood resilience, bounded and loopback-only: an INVITE flood from unlisted addresses while
SIPp places a legitimate authenticated load against the same region node.

Run: python bench/flood.py [--seconds 10] [--rate 50] [--sources 200] [--json FILE]

The twin runs in its own process (``python -m siptwin up --regions us1`` on free API/DNS
ports); the domain has an IP ACL (127.0.0.1 only) and a credential list, so SIPp from
127.0.0.1 must pass both, while the flood - one Python process sending INVITEs to the domain
as fast as it can, round-robin from UDP sockets bound to 127.0.77.1 … 127.0.77.N - is unlisted
and must be dropped silently (seed profile). Everything stays on loopback; the flood stops
after --seconds.

Phases: a baseline SIPp run without the flood, then the same SIPp run with the flood. Each
reports the legitimate success rate (SIPp's successful / placed calls), setup-time p50/p99
(SIPp's response time of the 200, from the first INVITE through 407, ACK and the INVITE with
credentials; -trace_rtt). Memory: the twin's VmRSS each second of the flood, after it, after a
second flood of the same length (a bounded twin does not grow again), and after --settle
seconds; then a short SIPp run shows the node still serves.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "harness" / "sipp" / "uac_auth.xml"
READY = "siptwin ready"
USER, PASSWORD, LABEL = "alice", "Harbour7Lights", "flood"
TWIML = 'twiml:<Response><Pause length="60"/></Response>'


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def udp_drops(node: tuple[str, int]) -> int:
    """The kernel's drop counter of the node's UDP socket (receive buffer full)."""
    a, b, c, d = (int(x) for x in node[0].split("."))
    local = f"{d:02X}{c:02X}{b:02X}{a:02X}:{node[1]:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            return int(fields[-1])
    return 0


def vmrss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class TwinProcess:
    def __init__(self, state: Path) -> None:
        self.api_port, self.dns_port = free_port(), free_port(socket.SOCK_DGRAM)
        self.argv = [sys.executable, "-m", "siptwin", "up", "--state", str(state),
                     "--api-port", str(self.api_port), "--dns-port", str(self.dns_port),
                     "--regions", "us1"]
        self.proc: subprocess.Popen[str] | None = None
        self.banner: list[str] = []

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=ROOT)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("siptwin up exited:\n" + "".join(self.banner))
            self.banner.append(line)
            if line.startswith(READY):
                return
        raise RuntimeError("siptwin up did not get ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def credentials(twin: TwinProcess) -> tuple[str, str]:
    """TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN from the banner of ``siptwin up``."""
    values = dict(line.strip().split("=", 1) for line in twin.banner if line.startswith("TWILIO_"))
    return values["TWILIO_ACCOUNT_SID"], values["TWILIO_AUTH_TOKEN"]


def node_of(region: str = "us1") -> tuple[str, int]:
    from siptwin.regions.catalogue import Catalogue, default_catalogue_dir

    r = Catalogue.load(default_catalogue_dir())[region]
    return r.address, r.udp_port


def provision(twin: TwinProcess) -> None:
    from siptwin.harness.provision import DomainPlan, provision, sdk_client

    sid, token = credentials(twin)
    client = sdk_client(f"http://127.0.0.1:{twin.api_port}", sid, token)
    provision(client, DomainPlan(LABEL, voice_url=TWIML, acl=["127.0.0.1"],
                                 credentials=[(USER, PASSWORD)]))


def rfc_ack_copy(work: Path) -> Path:
    """uac_auth.xml with the 407's ACK on the INVITE's branch (RFC 3261 §17.1.1.3), so the
    node does not retransmit the 407 until Timer H (see bench/RESULTS.md, sipp_load)."""
    text = SCENARIO.read_text()
    head, sep, tail = text.partition("CSeq: 1 ACK")
    head = head[::-1].replace("[branch]"[::-1], "[branch-3]"[::-1], 1)[::-1]
    path = work / "uac_auth_rfc_ack.xml"
    path.write_text(head + sep + tail)
    return path


def run_sipp(work: Path, scenario: Path, node: tuple[str, int], rate: float, calls: int,
             tag: str) -> dict[str, object]:
    host = f"{LABEL}.sip.us1.twilio.com"
    run_dir = work / tag
    run_dir.mkdir()
    argv = ["sipp", f"{node[0]}:{node[1]}", "-sf", str(scenario), "-key", "domain", host,
            "-s", "1000", "-au", USER, "-ap", PASSWORD, "-auth_uri", f"1000@{host}",
            "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)), "-m", str(calls),
            "-r", str(rate), "-l", str(int(rate * 4)), "-recv_timeout", "10s",
            "-timeout", f"{int(calls / rate) + 40}s", "-nostdin", "-trace_stat", "-stf",
            "stats.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1"]
    began = time.perf_counter()
    proc = subprocess.run(argv, cwd=run_dir, capture_output=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - began
    stats = {}
    rows = list(csv.reader((run_dir / "stats.csv").read_text().splitlines(), delimiter=";"))
    if len(rows) >= 2:
        stats = dict(zip(rows[0], rows[-1], strict=False))
    rtts: list[float] = []
    for path in run_dir.glob("*_rtt.csv"):
        for row in list(csv.reader(path.read_text().splitlines(), delimiter=";"))[1:]:
            if len(row) >= 2 and row[1].strip():
                rtts.append(float(row[1]))  # Date_ms;response_time_ms;rtd_no
    rtts.sort()
    ok = int(stats.get("SuccessfulCall(C)", 0) or 0)
    failed = int(stats.get("FailedCall(C)", 0) or 0)
    return {
        "phase": tag, "exit": proc.returncode, "calls": calls, "rate": rate,
        "successful": ok, "failed": failed, "success_rate": round(ok / calls, 4),
        "retransmissions": int(stats.get("Retransmissions(C)", 0) or 0),
        "setup_ms_p50": round(statistics.median(rtts), 1) if rtts else None,
        "setup_ms_p99": round(rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))], 1) if rtts else None,
        "setup_samples": len(rtts), "elapsed_s": round(elapsed, 1),
        "command": " ".join(argv),
    }


def flood(node: tuple[str, int], seconds: float, sources: int, counter) -> None:
    """One process, as fast as it can: INVITEs to the domain from unlisted 127.0.77.x."""
    host = f"{LABEL}.sip.us1.twilio.com"
    socks = []
    for i in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.77.{1 + i % 254}", 0) if sources <= 254 else
               (f"127.0.{77 + i // 254}.{1 + i % 254}", 0))
        s.setblocking(False)
        socks.append(s)
    body = (b"v=0\r\no=- 1 1 IN IP4 127.0.77.1\r\ns=-\r\nc=IN IP4 127.0.77.1\r\nt=0 0\r\n"
            b"m=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
    template = (f"INVITE sip:1000@{host} SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 127.0.77.1:5060;branch=z9hG4bKfl%d;rport\r\n"
                "From: <sip:flood@127.0.77.1>;tag=f%d\r\n"
                f"To: <sip:1000@{host}>\r\nCall-ID: %d@flood\r\nCSeq: 1 INVITE\r\n"
                "Contact: <sip:flood@127.0.77.1>\r\nMax-Forwards: 70\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    sent = dropped = 0
    end = time.monotonic() + seconds
    n = 0
    while True:
        if (n & 255) == 0 and time.monotonic() >= end:
            break
        n += 1
        try:
            socks[n % sources].sendto(template % (n, n, n), node)
            sent += 1
        except (BlockingIOError, OSError):
            dropped += 1
    counter.value = sent
    for s in socks:
        s.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="legitimate calls/s (SIPp)")
    parser.add_argument("--sources", type=int, default=200, help="unlisted flood addresses")
    parser.add_argument("--settle", type=float, default=40.0, help="seconds before the last VmRSS")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="siptwin-flood-"))
    state = work / "state"
    twin = TwinProcess(state)
    twin.start()
    node = node_of()
    calls = int(args.rate * args.seconds)
    out: dict[str, object] = {"machine": f"{platform.node()} {platform.machine()} "
                              f"{os.cpu_count()} cpus, {platform.python_version()}",
                              "date": time.strftime("%Y-%m-%d"), "seconds": args.seconds}
    try:
        provision(twin)
        scenario = rfc_ack_copy(work)
        out["vmrss_kib_idle"] = vmrss_kib(twin.pid)
        out["baseline"] = run_sipp(work, scenario, node, args.rate, calls, "baseline")
        out["vmrss_kib_before_flood"] = vmrss_kib(twin.pid)
        counter = multiprocessing.Value("q", 0)
        flooder = multiprocessing.Process(target=flood, args=(node, args.seconds, args.sources, counter))
        cpu_before, drops_before = _cpu(twin.pid), udp_drops(node)
        samples: list[int] = []
        sampler = threading.Thread(target=_sample, args=(twin.pid, samples, args.seconds + 2),
                                   daemon=True)
        flooder.start()
        sampler.start()
        out["under_flood"] = run_sipp(work, scenario, node, args.rate, calls, "under_flood")
        flooder.join(args.seconds + 30)
        sampler.join()
        out["vmrss_kib_each_second"] = samples
        out["kernel_udp_drops"] = udp_drops(node) - drops_before
        out["flood_sent"] = counter.value
        out["flood_pps"] = round(counter.value / args.seconds)
        out["twin_cpu_s_during"] = round(_cpu(twin.pid) - cpu_before, 1)
        out["vmrss_kib_after_flood"] = vmrss_kib(twin.pid)
        # A second flood of the same length: a bounded twin does not grow again.
        second = multiprocessing.Process(target=flood, args=(node, args.seconds, args.sources, counter))
        second.start()
        second.join(args.seconds + 30)
        out["second_flood_sent"] = counter.value
        out["vmrss_kib_after_second_flood"] = vmrss_kib(twin.pid)
        time.sleep(args.settle)
        out["vmrss_kib_settled"] = vmrss_kib(twin.pid)
        out["twin_alive"] = twin.proc is not None and twin.proc.poll() is None
        out["after_settle"] = run_sipp(work, scenario, node, args.rate / 5, int(args.rate), "after")
    finally:
        twin.stop()
    print(json.dumps(out, indent=1))
    print(f"reproduce: python bench/flood.py --seconds {args.seconds:g} --rate {args.rate:g} "
          f"--sources {args.sources}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def _sample(pid: int, samples: list[int], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(vmrss_kib(pid))
        time.sleep(1.0)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
