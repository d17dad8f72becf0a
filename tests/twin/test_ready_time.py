"""The start-up time ``siptwin up`` prints counts siptwin's own start, not its shell's.

Linux dates a process from its fork; ``scripts/bootstrap && exec siptwin up`` forks once, runs
the bootstrap, then execs Python, so a fork-based count included the whole install (the fresh
machine check printed "process start to ready: 66 s")."""

from __future__ import annotations

import subprocess
import sys

PRINT_START = "import siptwin.cli as cli; seconds, since = cli._seconds_since_start(); " \
              "print(f'{seconds:.3f} {since}')"


def _measured(command: list[str]) -> tuple[float, str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    seconds, since = done.stdout.strip().split(" ", 1)
    return float(seconds), since


def test_a_process_that_starts_as_python_counts_from_its_start() -> None:
    seconds, since = _measured([sys.executable, "-c", PRINT_START])
    assert since == "process start"
    assert 0 <= seconds < 30


def test_a_shell_that_execs_python_late_does_not_lend_its_age() -> None:
    seconds, since = _measured(["bash", "-c", f'sleep 3; exec "{sys.executable}" -c "{PRINT_START}"'])
    assert since == "siptwin import"
    assert seconds < 3
