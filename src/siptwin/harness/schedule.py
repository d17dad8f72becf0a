"""How pytest-xdist deals scenario items out: the items of one scenario file to one worker.

A worker runs the items of one scenario file (one per region) together (batch.py), which only
helps if it has all of them: xdist's default ``load`` scheduling deals items out one by one.
Registered by the entry point when xdist is present and scenarios are asked for: with
``--dist load`` (what ``-n N`` means by default) xdist gets :class:`ScenarioFileScheduling`,
and every worker learns (``workerinput``) whether its scheduling keeps a scenario's items
together (``load``, ``loadscope``, ``loadfile`` do; ``loadgroup``, ``worksteal``, ``each``
do not, and their workers run items one by one).
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

FILE_TOGETHER = ("load", "loadscope", "loadfile")
WORKERINPUT_KEY = "siptwin_scenario_batches"


class ScenarioFileScheduling(LoadScopeScheduling):
    """xdist's ``load`` for every item but scenario items, which go in one unit per file, in
    the order of the collection (peer scenarios first: the entry point sorts them so), not
    largest unit first as ``loadscope`` deals them."""

    def _split_scope(self, nodeid: str) -> str:
        path, _, rest = nodeid.partition("::")
        return path if rest and path.endswith(".yaml") else nodeid

    def schedule(self) -> None:
        option = self.config.option
        reorder = getattr(option, "loadscopereorder", True)
        option.loadscopereorder = False
        try:
            super().schedule()
        finally:
            option.loadscopereorder = reorder


class SchedulingPlugin:
    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") == "load":
            return ScenarioFileScheduling(config, log)
        return None

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_KEY] = node.config.getvalue("dist") in FILE_TOGETHER
