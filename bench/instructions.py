"""Instructions per call of one or more source trees of siptwin, counted by valgrind.

Run: python bench/instructions.py TREE [TREE ...] [--app pause|say] [--calls 200,700]

For each TREE (a checkout: a worktree of a branch, main's clone, ...) bench/call_path.py runs
twice under ``valgrind --tool=callgrind`` with ``PYTHONPATH=TREE/src`` and a fixed hash seed,
once with few calls and once with more; the difference of the two totals divided by the
difference of the call counts is what one more call costs, start-up and provisioning
cancelled out. The count is the same from run to run within about 0.5 %, whatever else the
machine is doing, where the CPU time of one run moves by 10 % and more on this VM: a change
of 1-2 % of the call path shows in one go (about 90 s a tree).

What it does not see, so that a change it approves is still checked under load with
bench/compare_trees.py: the sockets and the peer (call_path.py captures the replies), the
cost of an instruction (it counts them: zlib's run several to a cycle, the interpreter's
fewer - ISA-L's deflate cut the count by 4.6 % and the CPU per call under SIPp not at all,
bench/RESULTS.md, fourteenth session) and the caches of a process that sleeps between
datagrams. The two runs of a tree go in parallel, each in its own network namespace (they
bind the same ports) when the process may make one (root), else one after the other.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CALL_PATH = Path(__file__).resolve().with_name("call_path.py")
_TOTAL = re.compile(r"^==\d+== Collected : (\d+)$", re.MULTILINE)


def _isolated() -> bool:
    """Whether each run can have a network namespace of its own."""
    if shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


def count(tree: Path, calls: int, app: str, isolated: bool) -> int:
    """The instructions of one call_path.py run of ``calls`` calls against ``tree``."""
    with tempfile.TemporaryDirectory(prefix="siptwin-instructions-") as scratch:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out",
                   sys.executable, str(CALL_PATH), "--calls", str(calls), "--app", app]
        if isolated:
            command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                       *command]
        env = os.environ | {"PYTHONPATH": str(tree / "src"), "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    found = _TOTAL.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"call_path.py under valgrind failed for {tree} with {calls} calls "
                         f"(exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return int(found.group(1))


def per_call(tree: Path, low: int, high: int, app: str, isolated: bool) -> float:
    if isolated:
        with ThreadPoolExecutor(2) as pool:
            few, many = pool.map(lambda n: count(tree, n, app, True), (low, high))
    else:
        few, many = count(tree, low, app, False), count(tree, high, app, False)
    return (many - few) / (high - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts of siptwin")
    parser.add_argument("--app", default="pause", choices=("pause", "say"))
    parser.add_argument("--calls", default="200,700",
                        help="the two call counts, fewer first (default 200,700)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    try:
        low, high = (int(n) for n in args.calls.split(","))
    except ValueError:
        parser.error("--calls: two numbers, such as 200,700")
    if not 0 < low < high:
        parser.error("--calls: the first count must be positive and below the second")
    trees = [tree.resolve() for tree in args.trees]
    for tree in trees:
        if not (tree / "src" / "siptwin").is_dir():
            parser.error(f"{tree} holds no src/siptwin")
    isolated = _isolated()
    first: float | None = None
    for tree in trees:
        instructions = per_call(tree, low, high, args.app, isolated)
        first = first or instructions
        print(f"{str(tree):40s} {instructions / 1e6:7.3f} M instructions per call "
              f"({args.app}, calls {low} and {high}); against the first tree "
              f"{instructions / first:.3f}x", flush=True)


if __name__ == "__main__":
    main()
