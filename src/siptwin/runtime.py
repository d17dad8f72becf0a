"""Small pieces every long-running siptwin process shares."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Young-generation collections every this many net allocations (CPython's default is 700).
# A node under load allocates a few thousand short-lived objects per call, almost none of
# them in reference cycles; collecting every 700 allocations costs a tenth of its CPU.
# 2,000 was tried (shorter young passes, since finished transactions are untracked tuples:
# sip/transaction.py) and lost at 700 calls/s under SIPp: p99 setup 136-224 ms and 19-579
# failed calls in three of five runs, against 24-64 ms and one failing run of five at
# 20,000 (bench/RESULTS.md, eighth session).
GC_YOUNG_THRESHOLD = 20_000


def settle_for_serving() -> None:
    """Tune the cyclic garbage collector for a server that has finished starting.

    Everything alive now (modules, the catalogue, the control plane, listeners) lives as long
    as the process: ``gc.freeze`` moves it out of the collector's way, so full collections
    only walk what calls create. For whole processes that serve (``siptwin up``, a region
    process) and a scenario-suite worker once its twin runs (harness/plugin.py); other
    embedding test runs keep the defaults.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def until_terminated() -> None:
    """Return once the process gets SIGINT (Ctrl-C) or SIGTERM (``siptwin down``, a launcher)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a serving process's main coroutine on uvloop when it is installed.

    uvloop (libuv) spends a fraction of asyncio's pure-Python loop per datagram; the SIP
    stack does not depend on which loop runs it. ``SIPTWIN_EVENT_LOOP=asyncio`` forces the
    standard loop (to compare, or to rule the loop out while debugging).
    """
    uvloop = _uvloop()
    return uvloop.run(main) if uvloop is not None else asyncio.run(main)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop for a thread that serves (the scenario suite's worker twin), chosen as
    :func:`run_event_loop` chooses."""
    uvloop = _uvloop()
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def _uvloop() -> Any:
    if os.environ.get("SIPTWIN_EVENT_LOOP", "uvloop") != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop
