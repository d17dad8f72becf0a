"""How pytest-xdist deals scenario items out: each worker its share, all at the start.

A worker runs its scenario items together (batch.py), which only helps if it knows them:
xdist's default ``load`` scheduling deals items out one by one, a few at a time. With ``--dist
load`` (what ``-n N`` means by default) xdist gets :class:`ScenarioShareScheduling`: the
scenario items are dealt in one share per worker (:func:`shares.deal`, a function of the
collection's node ids alone, which every worker computes too), each share sent whole to its
worker at the start. Every worker learns (``workerinput``) whether its scheduling does that;
``loadscope`` and ``loadfile`` keep a scenario file's items together, and workers batch those;
``loadgroup``, ``worksteal`` and ``each`` do neither, and their workers run items one by one.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from .shares import deal

FILE_TOGETHER = ("load", "loadscope", "loadfile")
WORKERINPUT_KEY = "siptwin_scenario_batches"
SHARES_KEY = "siptwin_scenario_shares"  # the same name as plugin.SHARES_KEY
SHARE_SCOPE = "siptwin-scenario-share-"


class ScenarioShareScheduling(LoadScopeScheduling):
    """xdist's ``load`` for every item but scenario items, which go in one unit per worker,
    the worker's share (shares.deal), sent to that worker before anything else. A share whose
    worker is gone goes to another worker as any unit does; that worker then runs its items
    a scenario file at a time, since they are not the share it computed."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._shares: dict[str, int] = {}  # scenario node id -> share, once collected

    def _split_scope(self, nodeid: str) -> str:
        share = self._shares.get(nodeid)
        return nodeid if share is None else f"{SHARE_SCOPE}{share}"

    def schedule(self) -> None:
        if self.collection is None and self.registered_collections:
            collection = next(iter(self.registered_collections.values()))
            self._shares = deal(collection, self.numnodes)
        option = self.config.option
        reorder = getattr(option, "loadscopereorder", True)
        option.loadscopereorder = False
        try:
            super().schedule()
        finally:
            option.loadscopereorder = reorder

    def _assign_work_unit(self, node: Any) -> None:
        own = f"{SHARE_SCOPE}{_worker_index(node.gateway.id)}"
        if own in self.workqueue:
            self.workqueue.move_to_end(own, last=False)
        super()._assign_work_unit(node)


def _worker_index(worker: str) -> int:
    return int(worker[2:]) if worker[2:].isdigit() else -1


class SchedulingPlugin:
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") == "load":
            return ScenarioShareScheduling(config, log)
        return None

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        dist = node.config.getvalue("dist")
        node.workerinput[WORKERINPUT_KEY] = dist in FILE_TOGETHER
        node.workerinput[SHARES_KEY] = dist == "load"
