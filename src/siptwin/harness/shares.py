"""How the scenario items of a suite run are dealt into one share per xdist worker.

Both sides compute it from the collection's node ids alone: the controller's scheduler, which
sends each worker its share (schedule.py), and the worker, which runs its share as one batch
(batch.py) from the first of its items on. Light on purpose: the controller imports it.
"""

from __future__ import annotations

from collections.abc import Sequence


def deal(nodeids: Sequence[str], shares: int) -> dict[str, int]:
    """The share (0 .. shares-1) of every scenario item among ``nodeids``: the n-th scenario
    item of the collection goes to share n mod ``shares``. The collection is the same on every
    xdist worker and on the controller, so each computes the same shares from node ids alone;
    peer items come first in it (the entry point sorts them so), so each share gets its part
    of the slow ones."""
    scenario_items = [n for n in nodeids if is_scenario_nodeid(n)]
    return {nodeid: index % max(shares, 1) for index, nodeid in enumerate(scenario_items)}


def is_scenario_nodeid(nodeid: str) -> bool:
    path, _, rest = nodeid.partition("::")
    return bool(rest) and path.endswith(".yaml")
