"""Run a SIPp XML scenario against a region node and read what SIPp counted.

SIPp 3.6 quirks handled here, once: the digest ``uri`` defaults to ``sip:<remote_ip>:<port>``
rather than the Request-URI (so ``-auth_uri service@host`` is always passed with credentials),
and a second 407 makes SIPp retransmit forever (so ``-recv_timeout`` is always set). Exit code
0 means every call succeeded, 1 that some failed; the CSV counters of ``-trace_stat`` give the
numbers.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..regions.catalogue import default_catalogue_dir


class PeerMissing(RuntimeError):
    """A real peer binary is not installed (scripts/bootstrap installs them all)."""


def require_binary(name: str) -> str:
    # Peers installed with pip (sipvicious) sit beside the interpreter, in a venv not on PATH.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    path = shutil.which(name, path=search)
    if path is None:
        raise PeerMissing(f"{name} is not installed: run scripts/bootstrap (Debian package needed)")
    return path


def harness_dir() -> Path:
    """The repository's ``harness/`` folder (SIPp XML, PBX configurations), or the copy an
    installed wheel carries."""
    for base in (Path.cwd(), default_catalogue_dir().parent):
        for candidate in (base, *base.parents):
            if (candidate / "harness" / "sipp").is_dir():
                return candidate / "harness"
    packaged = Path(__file__).resolve().parents[1] / "data" / "harness"
    if (packaged / "sipp").is_dir():
        return packaged
    raise FileNotFoundError("no harness/sipp folder above the working directory")


def resolve_scenario(name: str) -> Path:
    """An XML file by absolute path, path relative to the working directory, or bare name
    under ``harness/sipp/``."""
    path = Path(name)
    if path.is_absolute() or path.exists():
        return path
    return harness_dir() / "sipp" / name


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_sip_port(host: str = "127.0.0.1") -> int:
    """A port for a phone that listens on UDP and TCP at it and TLS at the next one (baresip):
    all three free, drawn below Linux's ephemeral range so that an outgoing connection of
    someone else cannot take it between this check and the phone's bind (a port the kernel
    handed out for UDP was seen busy for TCP, and baresip would not start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = random.randrange(20000, 32000, 2)
        wanted = ((socket.SOCK_DGRAM, port), (socket.SOCK_STREAM, port),
                  (socket.SOCK_STREAM, port + 1))
        try:
            for kind, number in wanted:
                with socket.socket(family, kind) as probe:
                    probe.bind((host, number))
        except OSError:
            continue
        return port
    raise OSError(f"no port free for UDP and TCP on {host}")


@dataclass
class SippRun:
    exit: int
    output: str
    command: list[str]
    stats: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def successful(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", "0") or 0)

    @property
    def failed(self) -> int:
        return int(self.stats.get("FailedCall(C)", "0") or 0)

    def as_record(self) -> dict[str, object]:
        return {"exit": self.exit, "successful": self.successful, "failed": self.failed,
                "command": " ".join(self.command), "duration": round(self.duration, 3),
                "output_tail": self.output[-1500:]}


def sipp_command(target: tuple[str, int], scenario: Path, *, host: str, service: str = "1000",
                 username: str | None = None, password: str | None = None,
                 transport: str = "udp", calls: int = 1, rate: float | None = None,
                 keys: dict[str, str] | None = None, local_ip: str = "127.0.0.1",
                 local_port: int = 0, recv_timeout: float = 5.0, timeout: float = 20.0,
                 stat_file: Path | None = None, extra: list[str] | None = None) -> list[str]:
    local_port = local_port or free_udp_port(local_ip)  # SIPp's -p 0 means 5060, not "any"
    argv = [require_binary("sipp"), f"{target[0]}:{target[1]}", "-sf", str(scenario),
            "-t", "u1" if transport == "udp" else "t1", "-key", "domain", host, "-s", service,
            "-i", local_ip, "-p", str(local_port), "-m", str(calls),
            "-recv_timeout", f"{int(recv_timeout * 1000)}ms", "-timeout", f"{int(timeout)}s",
            "-nostdin"]
    if rate is not None:
        argv += ["-r", str(rate)]
    if username is not None:
        argv += ["-au", username, "-ap", password or "", "-auth_uri", f"{service}@{host}"]
    for name, value in (keys or {}).items():
        argv += ["-key", name, value]
    if stat_file is not None:
        argv += ["-trace_stat", "-stf", str(stat_file), "-fd", "1"]
    return argv + list(extra or [])


def run_sipp(target: tuple[str, int], scenario: str | Path, *, host: str,
             timeout: float = 20.0, workdir: Path | None = None, **options) -> SippRun:
    """Run SIPp to completion (blocking; from asyncio use ``asyncio.to_thread``)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="siptwin-sipp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stat_file = workdir / "stats.csv"
    argv = sipp_command(target, resolve_scenario(str(scenario)), host=host, timeout=timeout,
                        stat_file=stat_file, **options)
    began = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout + 15)
        code, output = proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as err:
        code = -1
        output = ((err.stdout or b"") + (err.stderr or b"")).decode(errors="replace")
    return SippRun(code, output, argv, read_stats(stat_file), time.perf_counter() - began)


def read_stats(path: Path) -> dict[str, str]:
    """The last row of a ``-trace_stat`` CSV file (SIPp separates fields with ';')."""
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))
