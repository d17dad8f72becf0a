"""A region node under a SIPp-like flood, as a discrete-event model: one CPU serving a FIFO
receive queue, callers that retransmit, the node's overload guard deciding on each new
call's INVITE by its wait. Times are seconds; no sockets, no clocks: the same run gives the
same figures, whatever else the machine is doing (the rates measured with SIPp on a shared
machine move by a factor of three from one minute to the next).

The flow is harness/sipp/uac_auth.xml's: INVITE, 407, ACK, INVITE with credentials, 200,
ACK, BYE, 200; the caller retransmits an unanswered INVITE or BYE after 0.5, 1, 2 and 4 s
(SIPp's T1 doubling) and gives the call up after 5 s without an answer (-recv_timeout).
The CPU costs are the twin's own proportions (bench/RESULTS.md: ~1.3 ms a call at
700 calls/s, of which the authenticated INVITE and its pipeline are the most; a shed INVITE
~30 us with its reply).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

COSTS = {"invite": 0.25e-3, "ack": 0.08e-3, "auth-invite": 0.70e-3, "ack2": 0.08e-3,
         "bye": 0.20e-3}
SHED_COST = 0.03e-3
REPEAT_COST = 0.06e-3  # a retransmission the transaction layer answers again
CAPACITY = 1 / sum(COSTS.values())  # calls a second the model node completes at most
TICK = 0.05
BATCH = 64  # datagrams the node reads before its timers run (the endpoint's batch)
RETRANSMIT = (0.5, 1.0, 2.0, 4.0)
GIVE_UP = 5.0


@dataclass
class Outcome:
    offered: int
    completed: int  # calls through BYE and its 200
    shed: int  # calls refused (503) at their first INVITE
    failed: int  # calls taken that the caller gave up on
    retransmissions: int
    busy_seconds: float  # CPU time spent
    latest_wait: float = 0.0  # longest wait of a datagram

    def per_second(self, seconds: float) -> float:
        return self.completed / seconds


@dataclass
class _Call:
    number: int
    step: str = "invite"  # the message the caller is waiting to have answered
    attempts: int = 0
    answered: set[str] = field(default_factory=set)
    done: bool = False


def run(guard: Any, rate: float, seconds: float = 5.0, drain: float = 10.0,
        stalls: tuple[float, float] | None = None, seed: int = 1) -> Outcome:
    """Offer ``rate`` new calls a second, evenly, for ``seconds``; serve until every call has
    ended or ``drain`` seconds more have passed. ``guard`` is an OverloadGuard (or anything
    with its admits_new_call / tick / completed_now / messages). ``stalls`` (mean seconds
    between them, longest stall): the process is descheduled now and then, as on a machine
    shared with other work - at random moments (``seed``), for up to the longest stall."""
    chance = random.Random(seed)
    next_stall = chance.expovariate(1 / stalls[0]) if stalls else float("inf")
    events: list[tuple[float, int, str, Any]] = []  # (time, seq, kind, payload)
    seq = 0

    def at(time: float, kind: str, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (time, seq, kind, payload))

    calls = [_Call(n) for n in range(int(rate * seconds))]
    for call in calls:
        at(call.number / rate, "send", (call, "invite", 0))
    queue: list[tuple[float, _Call, str, int]] = []  # FIFO of (arrival, call, message, attempt)
    head = 0
    now = busy = 0.0
    next_tick, previous_tick = TICK, 0.0
    read_in_tick, least_wait = 0, float("inf")
    outcome = Outcome(len(calls), 0, 0, 0, 0, 0.0)
    end = seconds + drain

    def send(call: _Call, message: str, attempt: int, time: float) -> None:
        queue.append((time, call, message, attempt))
        if attempt == 0 and message in ("invite", "auth-invite", "bye"):
            for n in range(1, len(RETRANSMIT) + 1):
                at(time + sum(RETRANSMIT[:n]), "retransmit", (call, message, n))
            at(time + GIVE_UP, "give-up", (call, message))

    while now < end:
        # Callers act on everything due by now.
        while events and events[0][0] <= now:
            due, _, kind, payload = heapq.heappop(events)
            if kind == "send":
                send(*payload, time=due)
            elif kind == "retransmit":
                call, message, n = payload
                if not call.done and message not in call.answered:
                    outcome.retransmissions += 1
                    queue.append((due, call, message, n))
            elif kind == "give-up":
                call, message = payload
                if not call.done and message not in call.answered:
                    call.done = True
                    outcome.failed += 1
        if head == len(queue):
            if not events:
                break
            now = max(now, events[0][0])  # idle until the next datagram
            continue
        # Read a batch, then run the timers (the endpoint's rhythm).
        for _ in range(BATCH):
            if head == len(queue):
                break
            if now >= next_stall:
                assert stalls is not None
                now += chance.uniform(0.0, stalls[1])
                next_stall = now + chance.expovariate(1 / stalls[0])
            arrival, call, message, attempt = queue[head]
            head += 1
            wait = now - arrival
            outcome.latest_wait = max(outcome.latest_wait, wait)
            read_in_tick += 1
            least_wait = min(least_wait, wait)
            guard.messages += 1
            if call.done:
                cost = REPEAT_COST
            elif message == "invite" and not guard.admits_new_call(b"%d" % call.number, wait):
                cost = SHED_COST
                call.done = True
                outcome.shed += 1
            elif message in call.answered:
                cost = REPEAT_COST
            else:
                cost = COSTS[message]
                if message in ("invite", "auth-invite", "bye"):
                    call.answered.add(message)
                reply_at = now + cost
                if message == "invite":
                    at(reply_at, "send", (call, "ack", 0))
                    at(reply_at, "send", (call, "auth-invite", 0))
                elif message == "auth-invite":
                    guard.completed_now += 1
                    at(reply_at, "send", (call, "ack2", 0))
                    at(reply_at, "send", (call, "bye", 0))
                elif message == "bye":
                    call.done = True
                    outcome.completed += 1
            if attempt:
                guard.retransmissions += 1
            now += cost
            busy += cost
        if now >= next_tick:
            guard.tick(now - next_tick, now - previous_tick, read_in_tick,
                       least_wait if read_in_tick else 0.0)
            previous_tick, next_tick = now, now + TICK
            read_in_tick, least_wait = 0, float("inf")
        if head > 4096:  # keep the list short
            del queue[:head]
            head = 0
    outcome.busy_seconds = busy
    return outcome
