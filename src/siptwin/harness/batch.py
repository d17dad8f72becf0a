"""Scenario items run at the same time, so that their waits overlap.

Most of a suite run is waiting, not working: a 0.2 s silence window, a one-second ``<Dial>``,
a webhook timeout, a peer process that starts and hangs up. A worker runs its scenario items
as one batch: their coroutines run together on the worker's event loop against its one twin.
With xdist's ``load`` scheduling the batch is the worker's whole share of the suite
(shares.py: the scheduler and the worker compute the same share), so a peer
item that lasts eight seconds runs while dozens of short items of other scenarios go on
beside it; the slowest items (tag ``peer``) start first. Other schedulings batch the items
of one scenario file.

What keeps concurrent items apart:

- Each item has its own webhook slot (receiver.py), its own sockets on ephemeral ports, its
  own domain (the pool lends an idle domain of a shared plan to one item at a time and
  provisions another when none is idle: fixtures.py) and its own SDK client
  (:meth:`Environment.item_view`).
- Settings are twin-wide, so the batch, not the item, puts ``given.settings`` in force: items
  are run in rounds of identical settings, one round after another, each set before it starts
  and restored after it ends; an item never sees another round's settings.
- A fault (a stopped, blackholed or lossy region) is twin-wide too: an item with a fault step
  runs alone, as before.
- So does an item whose device is a container: each container has its own PID namespace, so
  SIPp in two containers at once makes the same Call-ID (``1-12@127.0.0.1``), and the twin
  keeps one call record per Call-ID (one item then found no call: seen in
  tests/harness/test_container_device.py).
- At most :data:`AT_ONCE` items run at a time. The twin, the webhook receiver and the SDK
  calls share one process (and one GIL) with the items: with all eight regions at once under
  load, the twin's answer to an INVITE was seen to take longer than T1 (500 ms), and the
  caller's retransmission changed the response sequence a scenario checks. Peer items
  (tag ``peer``) count apart, at most :data:`PEERS_AT_ONCE` of them: they mostly wait for
  a process of their own (``pjsua2-srtp-hold`` holds its call for eight seconds), and while
  they shared the four slots, a worker with two of them ran its short items two at a time
  for nine seconds, with its core half idle.

Every item still gets its own :class:`ItemResult`, judged from its own sockets, slot and call
records; the plugin reports each as its own test.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from .engine import ItemResult, run_item
from .outcome import Environment
from .scenario import Scenario

ITEM_TIMEOUT = 120.0  # one item's limit, as when items ran one by one
AT_ONCE = 4
PEERS_AT_ONCE = 4  # besides AT_ONCE others
ALONE_ACTIONS = frozenset({"fault"})  # steps that change the twin for everyone


def settings_of(scenario: Scenario) -> dict[str, Any]:
    return dict(scenario.given.get("settings") or {})


def runs_alone(scenario: Scenario) -> bool:
    return any(step.action in ALONE_ACTIONS
               or (step.action == "pbx" and step.params.get("device") == "container")
               for step in scenario.steps)


def slow(scenario: Scenario) -> bool:
    """Items that drive a real peer process take seconds; the rest tens of milliseconds."""
    return "peer" in scenario.tags


def start_rank(tags: Sequence[str]) -> int:
    """Which items start first: those that wait longest by design (tag ``long``, e.g. a call
    held for eight seconds), then the other peer items, then the rest; the same order as the
    collection's (pytest_plugin.py), so that each share gets its part of the long ones."""
    return 0 if "long" in tags else 1 if "peer" in tags else 2


def rounds(items: Sequence[tuple[Scenario, str]]
           ) -> list[tuple[dict[str, Any], list[int], list[int]]]:
    """(settings, indexes of items that run together, indexes of items that run alone): items
    with the same settings in one round, rounds in the order their settings first appear; the
    long and then the other slow items first among those that run together, so that their
    waits cover the others (:func:`start_rank`)."""
    found: dict[str, tuple[dict[str, Any], list[int], list[int]]] = {}
    for index, (scenario, _) in enumerate(items):
        settings = settings_of(scenario)
        key = json.dumps(settings, sort_keys=True, default=str)
        _, together, alone = found.setdefault(key, (settings, [], []))
        (alone if runs_alone(scenario) else together).append(index)
    for _, together, _ in found.values():
        together.sort(key=lambda i: start_rank(items[i][0].tags))  # stable: collection order otherwise
    return list(found.values())


Done = Callable[[int, ItemResult, float, float], None]


async def run_batch(items: Sequence[tuple[Scenario, str]], env: Environment,
                    timeout: float = ITEM_TIMEOUT, done: Done | None = None) -> list[ItemResult]:
    """One result per ``(scenario, region)`` of ``items``, in their order; ``done(index,
    result, began, ended)`` as each item ends (wall-clock window), so that its verdict need
    not wait for the whole batch."""
    twin = env.twin
    results: list[ItemResult | None] = [None] * len(items)
    # FIFO: items start in the order they are gathered
    gates = {False: asyncio.Semaphore(AT_ONCE), True: asyncio.Semaphore(PEERS_AT_ONCE)}

    async def one(index: int) -> None:
        scenario, region = items[index]
        async with gates[slow(scenario)]:
            view = env.item_view()
            began = time.time()
            try:
                results[index] = await _bounded(scenario, region, view, timeout)
            finally:
                env.release_view(view)
        if done is not None:
            done(index, results[index], began, time.time())  # type: ignore[arg-type]

    for settings, together, alone in rounds(items):
        saved = twin.fidelity
        if settings:
            twin.set_fidelity(saved.with_overrides(settings))
        try:
            await asyncio.gather(*(one(i) for i in together))
            for index in alone:
                await one(index)
        finally:
            twin.set_fidelity(saved)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


async def _bounded(scenario: Scenario, region: str, env: Environment,
                   timeout: float) -> ItemResult:
    began = time.perf_counter()
    try:
        return await asyncio.wait_for(run_item(scenario, region, env, settings_applied=True),
                                      timeout)
    except TimeoutError:
        result = ItemResult(scenario.id, region, scenario.title, scenario.feature, scenario.pins)
        result.outcome, result.error = "broken", f"the item did not finish in {timeout:g} s"
        result.duration = time.perf_counter() - began
        return result
