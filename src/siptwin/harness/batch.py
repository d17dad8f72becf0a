"""Items of one scenario run at the same time, so that their waits overlap.

Most of a suite run is waiting, not working: a 0.2 s silence window, a one-second ``<Dial>``,
a webhook timeout, a peer process that starts and hangs up, each the same in every region of
the scenario. A worker runs the items of one scenario file as one batch: their coroutines run
together on the worker's event loop against its one twin.

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
  caller's retransmission changed the response sequence a scenario checks.

Every item still gets its own :class:`ItemResult`, judged from its own sockets, slot and call
records; the plugin reports each as its own test.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from .engine import ItemResult, run_item
from .outcome import Environment
from .scenario import Scenario

ITEM_TIMEOUT = 120.0  # one item's limit, as when items ran one by one
AT_ONCE = 4
ALONE_ACTIONS = frozenset({"fault"})  # steps that change the twin for everyone


def settings_of(scenario: Scenario) -> dict[str, Any]:
    return dict(scenario.given.get("settings") or {})


def runs_alone(scenario: Scenario) -> bool:
    return any(step.action in ALONE_ACTIONS
               or (step.action == "pbx" and step.params.get("device") == "container")
               for step in scenario.steps)


def rounds(items: Sequence[tuple[Scenario, str]]) -> list[tuple[dict[str, Any], bool, list[int]]]:
    """(settings, together, indexes of items): items with the same settings in one round, in
    the order they first appear; ``together`` is False when one of them must run alone."""
    found: dict[str, tuple[dict[str, Any], list[int]]] = {}
    for index, (scenario, _) in enumerate(items):
        settings = settings_of(scenario)
        key = json.dumps(settings, sort_keys=True, default=str)
        found.setdefault(key, (settings, []))[1].append(index)
    return [(settings, not any(runs_alone(items[i][0]) for i in indexes), indexes)
            for settings, indexes in found.values()]


async def run_batch(items: Sequence[tuple[Scenario, str]], env: Environment,
                    timeout: float = ITEM_TIMEOUT) -> list[ItemResult]:
    """One result per ``(scenario, region)`` of ``items``, in their order."""
    twin = env.twin
    results: list[ItemResult | None] = [None] * len(items)
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(index: int) -> None:
        scenario, region = items[index]
        async with gate:
            view = env.item_view()
            try:
                results[index] = await _bounded(scenario, region, view, timeout)
            finally:
                env.release_view(view)

    for settings, together, indexes in rounds(items):
        saved = twin.fidelity
        if settings:
            twin.set_fidelity(saved.with_overrides(settings))
        try:
            if together:
                await asyncio.gather(*(one(i) for i in indexes))
            else:
                for index in indexes:
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
