"""When a node sheds new calls: the event loop runs late *and* messages pour in.

Sans-IO: the node counts the messages it receives and calls ``tick`` from a periodic timer
with how late that timer fired. A late timer alone is not overload (on a machine shared with
other work the process may simply not have been scheduled), and neither is a burst the loop
keeps up with; both together mean the node receives more than it can answer, and every new
call it takes then makes all calls late (the caller retransmits, which costs more again). So
while both hold, the node refuses new calls early, before the pipeline and without keeping
any state for them, and keeps serving the calls already under way.
"""

from __future__ import annotations

from dataclasses import dataclass

TICK_SECONDS = 0.05


@dataclass
class OverloadGuard:
    lag_limit: float  # seconds a tick may fire late
    message_rate: float  # messages per second below which the node is never overloaded
    shedding: bool = False
    messages: int = 0  # since the previous tick
    shed: int = 0  # new calls refused or dropped since start
    episodes: int = 0  # times shedding began

    def tick(self, lateness: float, elapsed: float) -> bool | None:
        """One timer tick ``lateness`` seconds late, ``elapsed`` seconds after the previous
        one. Returns True when shedding begins, False when it ends, None otherwise."""
        busy = self.messages >= self.message_rate * max(elapsed, TICK_SECONDS)
        self.messages = 0
        if not self.shedding and busy and lateness > self.lag_limit:
            self.shedding = True
            self.episodes += 1
            return True
        if self.shedding and (not busy or lateness < self.lag_limit / 2):
            self.shedding = False
            return False
        return None
