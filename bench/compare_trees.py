"""Two or more source trees of siptwin under the same SIPp load, in rotated order.

Run: python bench/compare_trees.py TREE [TREE ...] [--rounds 4] [--rate 1000] [--seconds 10]
     [--app pause|say]

Each TREE is a checkout (a worktree of a branch, main's clone, ...). Every round runs the
sipp_load.py beside this script once per tree, each with ``PYTHONPATH=TREE/src`` (so the
twin measured is that tree's, the load the same), one after the other; the order rotates from round to
round, so that a VM slowing down or speeding up during the run (this machine's speed moves
by 40 % within a day) weighs on every tree alike. It prints each run as it ends and then,
per tree, the median and mean of the twin's CPU per call, its wake-ups per call and SIPp's
CPU, and each tree's median against the first tree's.

Why: a change worth 2-5 % of the twin's CPU is smaller than the spread of one run against
the next on this VM (+-10 %), and what a change does to the sockets (a peer woken per
datagram, the twin's own sleeps) shows only with a real peer - bench/call_path.py runs in
one process and sees none of it. Four rounds of two trees take about six minutes.
Run it inside ``unshare -n`` (after ``ip link set lo up``) with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SIPP_LOAD = Path(__file__).resolve().with_name("sipp_load.py")


@dataclass
class Run:
    tree: Path
    twin_ms: float
    user_ms: float | None
    system_ms: float | None
    wakeups: float | None
    sipp_ms: float | None
    failed: int
    p99_ms: float | None

    def line(self) -> str:
        return (f"{str(self.tree):<30} twin {self.twin_ms:.3f} ms/call (user {self.user_ms}, "
                f"system {self.system_ms}), wake-ups/call {self.wakeups}, "
                f"SIPp {self.sipp_ms} ms/call, failed {self.failed}, p99 {self.p99_ms} ms")


@dataclass
class Tally:
    runs: list[Run] = field(default_factory=list)

    def figures(self, name: str) -> list[float]:
        return [value for run in self.runs if (value := getattr(run, name)) is not None]


def rotated(trees: list[Path], round_index: int) -> list[Path]:
    """The trees in the order of round ``round_index``: each round starts one further on."""
    start = round_index % len(trees)
    return trees[start:] + trees[:start]


def measure(tree: Path, args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, str(SIPP_LOAD), "--rates", str(args.rate), "--seconds",
                   str(args.seconds), "--settle", "0", "--app", args.app, "--json", str(report)]
        env = os.environ | {"PYTHONPATH": str(tree / "src")}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not report.exists():
            raise SystemExit(f"sipp_load.py failed for {tree} (exit {done.returncode}):\n"
                             f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        (result,) = json.loads(report.read_text())[args.app]["rates"]
    if result["twin_cpu_ms_per_call"] is None:
        raise SystemExit(f"no call completed against {tree}")
    return Run(tree, result["twin_cpu_ms_per_call"], result["twin_user_ms_per_call"],
               result["twin_system_ms_per_call"], result["twin_wakeups_per_call"],
               result["sipp_cpu_ms_per_call"], result["failed"], result["p99_ms"])


def summary(trees: list[Path], tallies: dict[Path, Tally]) -> list[str]:
    lines = []
    first = statistics.median(tallies[trees[0]].figures("twin_ms"))
    for tree in trees:
        tally = tallies[tree]
        twin = tally.figures("twin_ms")
        median = statistics.median(twin)
        wakeups = tally.figures("wakeups")
        sipp = tally.figures("sipp_ms")
        lines.append(
            f"{str(tree):<30} twin ms/call median {median:.3f} (mean {statistics.mean(twin):.3f}, "
            f"runs {', '.join(f'{v:.3f}' for v in twin)}); "
            f"wake-ups/call median {_median_text(wakeups)}; "
            f"SIPp ms/call median {_median_text(sipp)}; "
            f"failed {sum(run.failed for run in tally.runs)}; "
            f"against the first tree {median / first:.3f}x")
    return lines


def _median_text(values: list[float]) -> str:
    return f"{statistics.median(values):.3f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts of siptwin")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rate", type=int, default=1000, help="calls/s, one step per run")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--app", default="pause", choices=("pause", "say"))
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    for tree in trees:
        if not (tree / "src" / "siptwin").is_dir():
            parser.error(f"{tree} holds no src/siptwin")
    if len(set(trees)) != len(trees):
        parser.error("a tree is named twice")
    tallies = {tree: Tally() for tree in trees}
    for round_index in range(args.rounds):
        for tree in rotated(trees, round_index):
            run = measure(tree, args)
            tallies[tree].runs.append(run)
            print(f"round {round_index + 1}/{args.rounds}: {run.line()}", flush=True)
    print()
    print(f"{args.rounds} rounds at {args.rate} calls/s, {args.seconds:g} s each, app "
          f"{args.app}, order rotated each round:")
    for line in summary(trees, tallies):
        print(line)


if __name__ == "__main__":
    main()
