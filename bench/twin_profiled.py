"""``siptwin up`` with cProfile and collector timings switched on and off by signals.

Run by bench/sipp_load.py ``--profile-twin FILE`` in place of ``python -m siptwin up``:

    python bench/twin_profiled.py FILE up --state ... (the arguments of ``siptwin up``)

SIGUSR1 starts cProfile (main thread: the event loop), the timing of the cyclic garbage
collector's passes and a probe of the event loop (a callback every 5 ms that notes when it
runs 15 ms or more late, and a thread that samples the main thread's stack every 2 ms
while the probe is overdue); SIGUSR2 stops them and writes the cProfile data to FILE, and to
FILE.gc.json the collector's passes (per generation: passes, total and longest
milliseconds, objects collected), the loop's stalls (how late, and the collector's passes
that ended within them; a histogram of the probe's lateness from 5 ms and the ten longest) and how often the transaction layers' timers woke the loop. With ``SIPTWIN_PROFILE=0`` in the environment cProfile
stays off (its own cost hides the loop's stalls) and only the collector and the probe run. The bench sends SIGUSR1 before each rate and SIGUSR2 after it (each
rate's summary also goes to FILE.<n>.gc.json, n counting the rates from 1), so the
profile covers the calls only (start-up and provisioning left out), and per call counts can
be set beside bench/call_path.py's ``--profile``.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

from siptwin.cli import main
from siptwin.transport.timers import LayerTimer

# Wake-ups of the transaction layers' timers (every node's), while timing: how often the
# event loop is woken for a transaction timer rather than a datagram.
layer_wake_ups = [0]
_layer_fire = LayerTimer._fire


def _counted_fire(self: LayerTimer) -> None:
    if _timing[0]:
        layer_wake_ups[0] += 1
    _layer_fire(self)


LayerTimer._fire = _counted_fire  # type: ignore[method-assign]

# The twin's event loop entry points that run long, while timing (SIPTWIN_SLOW_CALLBACK_MS,
# default 2): by entry point, how many, their wall and CPU milliseconds (CPU of the main
# thread: the difference is time the process was not running) and the longest. The loop is
# uvloop's (C), so its callbacks are timed where they enter the twin's code: a batch of
# datagrams, a transaction layer's timer, the media clock's 20 ms tick, the overload
# check, and (nested in others) the packing of ended calls' records.
SLOW_CALLBACK = float(os.environ.get("SIPTWIN_SLOW_CALLBACK_MS", "2")) / 1e3
slow_callbacks: dict[str, list[float]] = {}  # name -> [count, wall ms, cpu ms, longest wall ms]


def _timed(owner: Any, attribute: str) -> None:
    original = getattr(owner, attribute)
    name = f"{owner.__name__}.{attribute}"

    def timed(*args: Any, **kwargs: Any) -> Any:
        if not _timing[0]:
            return original(*args, **kwargs)
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            wall = time.perf_counter() - wall
            if wall >= SLOW_CALLBACK:
                cpu = time.thread_time() - cpu
                kept = slow_callbacks.setdefault(name, [0, 0.0, 0.0, 0.0])
                kept[0] += 1
                kept[1] += wall * 1e3
                kept[2] += cpu * 1e3
                kept[3] = max(kept[3], wall * 1e3)

    setattr(owner, attribute, timed)


def _time_entry_points() -> None:
    from siptwin.model import calls
    from siptwin.regions.node import RegionNode
    from siptwin.transport import endpoint
    from siptwin.voice.media import MediaClock

    for owner, attribute in ((endpoint._UdpSocket, "_readable"), (LayerTimer, "_fire"),
                             (MediaClock, "_tick"), (RegionNode, "_overload_tick"),
                             (calls.CallRegistry, "pack_later")):
        _timed(owner, attribute)


_time_entry_points()

PROFILING = os.environ.get("SIPTWIN_PROFILE", "1") != "0"
# SIPTWIN_STALL_MS: how late the probe must run to count as a stall (default 15 ms); the
# summary also gives a histogram of every lateness of 5 ms or more.
PROBE_EVERY = 0.005
STALL = float(os.environ.get("SIPTWIN_STALL_MS", "15")) / 1e3
HISTOGRAM_MS = (5, 10, 20, 50, 100)
profiler = cProfile.Profile()
passes: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}  # (ended at, ms)
collected: dict[int, int] = {0: 0, 1: 0, 2: 0}
census: list[tuple[int, int, list[tuple[str, int]]]] = []  # SIPTWIN_GC_CENSUS=1
stalls: list[tuple[float, float]] = []  # (probe ran at, ms late)
lateness: list[float] = []  # every probe 5 ms or more late, ms
_steps = [0]
_began = [0.0, 0.0]  # wall clock, the main thread's CPU clock
pass_cpu_ms: dict[int, float] = {0: 0.0, 1: 0.0, 2: 0.0}  # of the passes: CPU, not wall
_timing = [False]
_probe: list[asyncio.TimerHandle] = []
_last_probe = [0.0]
# Where the main thread was, sampled by a watchdog thread while the probe is overdue.
stall_stacks: Counter[str] = Counter()


def _watchdog(main_id: int) -> None:
    while True:
        time.sleep(0.002)
        if not _timing[0] or time.perf_counter() - _last_probe[0] < STALL:
            continue
        frame = sys._current_frames().get(main_id)
        if frame is not None:
            stack = traceback.extract_stack(frame)[-6:]
            stall_stacks[" < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}({f.name})"
                                    for f in reversed(stack))] += 1


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if not _timing[0]:
        return
    if phase == "start":
        if os.environ.get("SIPTWIN_GC_CENSUS"):
            young = gc.get_objects(generation=info["generation"])
            census.append((info["generation"], len(young),
                           Counter(type(o).__qualname__ for o in young).most_common(12)))
            del young
        _began[:] = [time.perf_counter(), time.thread_time()]
    else:
        now = time.perf_counter()
        passes[info["generation"]].append((now, (now - _began[0]) * 1e3))
        pass_cpu_ms[info["generation"]] += (time.thread_time() - _began[1]) * 1e3
        collected[info["generation"]] += info["collected"]


def _probe_loop(due: float) -> None:
    loop = asyncio.get_running_loop()
    now = loop.time()
    _last_probe[0] = time.perf_counter()
    if now - due >= HISTOGRAM_MS[0] / 1e3:
        lateness.append((now - due) * 1e3)
    if now - due >= STALL:
        stalls.append((time.perf_counter(), (now - due) * 1e3))
    _probe[:] = [loop.call_at(now + PROBE_EVERY, _probe_loop, now + PROBE_EVERY)]


def _start(signum: int, frame: object) -> None:
    # Each SIGUSR1/SIGUSR2 pair (one rate of bench/sipp_load.py) is summarised on its own.
    for kept in (stalls, lateness, census):
        kept.clear()
    for gen in passes:
        passes[gen].clear()
        collected[gen] = 0
        pass_cpu_ms[gen] = 0.0
    stall_stacks.clear()
    slow_callbacks.clear()
    layer_wake_ups[0] = 0
    _timing[0] = True
    loop = asyncio.get_running_loop()
    _probe_loop(loop.time())
    if PROFILING:
        profiler.enable()


def _stop(signum: int, frame: object) -> None:
    if PROFILING:
        profiler.disable()
    _timing[0] = False
    for handle in _probe:
        handle.cancel()
    out = sys.argv[1]
    if PROFILING:
        profiler.dump_stats(out)
    summary: dict[str, Any] = {
        str(gen): {"passes": len(ms), "total_ms": round(sum(m for _, m in ms), 2),
                   "longest_ms": round(max((m for _, m in ms), default=0.0), 2),
                   "cpu_ms": round(pass_cpu_ms[gen], 2),
                   "collected": collected[gen]} for gen, ms in passes.items()}
    summary["stalls"] = [
        {"ms_late": round(late, 1),
         "gc_passes_within": [(gen, round(ms, 1)) for gen, ended in passes.items()
                              for at, ms in ended if at_stall - late / 1e3 <= at <= at_stall]}
        for at_stall, late in stalls]
    summary["lateness_at_least_ms"] = {str(ms): sum(1 for late in lateness if late >= ms)
                                       for ms in HISTOGRAM_MS}
    summary["longest_ms"] = sorted((round(late, 1) for late in lateness), reverse=True)[:10]
    summary["slow_callbacks"] = sorted(
        ({"what": name, "count": int(n), "wall_ms": round(wall, 1), "cpu_ms": round(cpu, 1),
          "longest_ms": round(longest, 1)} for name, (n, wall, cpu, longest) in
         slow_callbacks.items()), key=lambda row: -row["wall_ms"])
    summary["census"] = census
    summary["layer_timer_wake_ups"] = layer_wake_ups[0]
    summary["stall_samples"] = stall_stacks.most_common(40)
    _steps[0] += 1
    for name in (f"{out}.gc.json", f"{out}.{_steps[0]}.gc.json"):
        with open(name, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    gc.callbacks.append(_on_gc)
    threading.Thread(target=_watchdog, args=(threading.get_ident(),), daemon=True).start()
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    raise SystemExit(main(sys.argv[2:]))
