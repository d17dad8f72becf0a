"""Small pieces every long-running siptwin process shares."""

from __future__ import annotations

import asyncio
import signal


async def until_terminated() -> None:
    """Return once the process gets SIGINT (Ctrl-C) or SIGTERM (``siptwin down``, a launcher)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
