"""Start-up time: from launching ``siptwin up`` to its "siptwin ready" line.

Run: python bench/startup.py [--runs 5] [--regions us1,ie1]

Each run starts a fresh twin (new state directory, so the account, the SQLite store and the
TLS certificate are created as on a first start) in a subprocess, measures wall time from
``Popen`` to the ready line on stdout, then stops it with SIGTERM. It prints every run, the
median, and the twin's own figure ("ready in X s", the start() call alone). ``--warm`` reuses
one state directory so runs after the first measure a restart.
"""

from __future__ import annotations

import argparse
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READY = "siptwin ready"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(state: Path, regions: str | None) -> tuple[float, float | None]:
    argv = [sys.executable, "-m", "siptwin", "up", "--state", str(state),
            "--api-port", str(free_port()), "--dns-port", str(free_port())]
    if regions:
        argv += ["--regions", regions]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    own = None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(READY):
                elapsed = time.perf_counter() - began
                match = re.search(r"ready in ([0-9.]+) s", line)
                own = float(match.group(1)) if match else None
                return elapsed, own
        raise RuntimeError("siptwin up exited before ready:\n" + "".join(lines))
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--regions", help="siptwin up --regions (default: all eight)")
    parser.add_argument("--warm", action="store_true", help="reuse one state directory")
    args = parser.parse_args(argv)
    times: list[float] = []
    owns: list[float] = []
    with tempfile.TemporaryDirectory(prefix="siptwin-startup-") as tmp:
        for i in range(args.runs):
            state = Path(tmp) / ("state" if args.warm else f"state-{i}")
            elapsed, own = one_run(state, args.regions)
            times.append(elapsed)
            if own is not None:
                owns.append(own)
            print(f"run {i + 1}: {elapsed:.3f} s to '{READY}'"
                  + (f" (twin start() {own:.3f} s)" if own is not None else ""), flush=True)
    median = statistics.median(times)
    print(f"median of {len(times)}: {median:.3f} s from launch to '{READY}' "
          f"({'warm' if args.warm else 'fresh state'}; {args.regions or 'all eight regions'})"
          + (f"; twin start() median {statistics.median(owns):.3f} s" if owns else ""))
    shown = argv if argv is not None else sys.argv[1:]
    print("reproduce: python bench/startup.py" + (" " + shlex.join(shown) if shown else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
