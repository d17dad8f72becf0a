"""sipvicious (svmap, svwar, svcrack) as subprocesses against a region node, loopback only.

Every run gets its own local port (``-P``; the default 5060 collides) and its own HOME
(sessions live under ``~/.sipvicious``), binds to a loopback address (``-b``) and uses UDP.
Never ``-A`` or ``-R`` (they reach outside hosts) and never svcrash: this module cannot build
those command lines. Exit codes: svmap 0 = found, 30 = nothing; svwar/svcrack 40 = found,
0 = nothing.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .sipp import free_udp_port, require_binary

FORBIDDEN = {"-A", "--autogetip", "-R", "--reportback"}


@dataclass
class ScanRun:
    tool: str
    exit: int
    output: str
    command: list[str]
    rows: list[list[str]] = field(default_factory=list)  # the ASCII result table

    @property
    def found(self) -> bool:
        return self.exit == (0 if self.tool == "svmap" else 40)

    def as_record(self) -> dict[str, object]:
        return {"tool": self.tool, "exit": self.exit, "found": self.found, "rows": self.rows,
                "command": " ".join(self.command), "output_tail": self.output[-1200:]}


def run_tool(tool: str, target: tuple[str, int], *args: str, bind: str = "127.0.0.1",
             timeout: float = 60.0, home: Path | None = None) -> ScanRun:
    if tool not in ("svmap", "svwar", "svcrack"):
        raise ValueError(f"{tool}: only svmap, svwar and svcrack are allowed")
    if FORBIDDEN & set(args):
        raise ValueError(f"sipvicious options {sorted(FORBIDDEN & set(args))} are not allowed")
    if not bind.startswith("127.") or not target[0].startswith("127."):
        raise ValueError("sipvicious runs on loopback only")
    home = home or Path(tempfile.mkdtemp(prefix=f"siptwin-{tool}-"))
    argv = [require_binary(f"sipvicious_{tool}"), "-b", bind, "-P", str(free_udp_port(bind)),
            "-p", str(target[1]), *args, target[0]]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={"HOME": str(home), "PATH": _path(), "LANG": "C.UTF-8"})
        code, out = proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired as err:
        code, out = -1, ((err.stdout or b"") + (err.stderr or b"")).decode(errors="replace")
    return ScanRun(tool, code, out, argv, table_rows(out))


def _path() -> str:
    import os

    return os.environ.get("PATH", "/usr/bin:/bin")


_ROW = re.compile(r"^\|(.+)\|\s*$")


def table_rows(output: str) -> list[list[str]]:
    """The data rows of sipvicious' ASCII table (header row dropped)."""
    rows = [[cell.strip() for cell in m.group(1).split("|")]
            for line in output.splitlines() if (m := _ROW.match(line.strip()))]
    return rows[1:] if rows else []
