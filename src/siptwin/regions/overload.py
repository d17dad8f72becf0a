"""When a node sheds new calls: the event loop runs late, or callers retransmit, *and*
messages pour in.

Sans-IO: the node counts the messages it receives (and, among requests, the retransmissions
of transactions it already holds) and calls ``tick`` from a periodic timer with how late that
timer fired. Under UDP overload the backlog waits in the kernel's socket buffer, where the
loop's lateness does not show it (the loop reads a batch, runs its timers, reads the next);
the callers show it instead: they retransmit what waited 500 ms unanswered. A late timer alone is not overload (on a machine shared with
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
    retransmission_share: float = 0.2  # of the messages since the previous tick
    shedding: bool = False
    messages: int = 0  # since the previous tick
    retransmissions: int = 0  # since the previous tick
    shed: int = 0  # new calls refused or dropped since start
    episodes: int = 0  # times shedding began

    def tick(self, lateness: float, elapsed: float) -> bool | None:
        """One timer tick ``lateness`` seconds late, ``elapsed`` seconds after the previous
        one. Returns True when shedding begins, False when it ends, None otherwise."""
        messages, retransmitted = self.messages, self.retransmissions
        busy = messages >= self.message_rate * max(elapsed, TICK_SECONDS)
        share = retransmitted / messages if messages else 0.0
        self.messages = self.retransmissions = 0
        if not self.shedding and busy and (lateness > self.lag_limit
                                           or share > self.retransmission_share):
            self.shedding = True
            self.episodes += 1
            return True
        if self.shedding and (not busy or (lateness < self.lag_limit / 2
                                           and share < self.retransmission_share / 4)):
            self.shedding = False
            return False
        return None
