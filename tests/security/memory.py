"""Resident memory of a process, for the checks that an attack leaves no growth behind."""

from __future__ import annotations

import gc
import os

# Issue 15's acceptance: after an attack, memory returns within 20 MB of its level before.
SLACK_BYTES = 20 * 1024 * 1024


def rss_bytes(pid: int | None = None) -> int:
    """VmRSS of ``pid`` (this process by default), from /proc."""
    gc.collect()
    with open(f"/proc/{pid or os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/PID/status")
