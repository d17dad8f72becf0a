"""The scenario machinery: YAML scenarios become items, one per scenario × region.

``siptwin.pytest_plugin`` (the ``pytest11`` entry point, light and inert) imports this module
when it collects the first file under an opted-in scenario root.  Each test worker runs one embedded twin (on its own loopback /24 and ephemeral ports, so xdist
workers never collide) and one webhook receiver in a background event loop; every item writes
one JSON result; ``--siptwin-report FILE`` renders them into one HTML page when the session ends.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ..regions.catalogue import Catalogue, default_catalogue_dir
from ..runtime import new_event_loop, settle_for_serving
from ..settings import load_fidelity
from ..twin.config import TwinConfig
from ..twin.launch import make_twin
from .batch import ITEM_TIMEOUT, run_batch
from .engine import ItemResult
from .optin import scenario_root
from .outcome import Environment
from .pcap import SessionCapture, item_file_name
from .receiver import WebhookReceiver
from .scenario import Scenario, ScenarioError, load_scenario
from .shares import deal


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        root = scenario_root(self.config, self.path)
        assert root is not None
        self.config.addinivalue_line("markers", "scenario: a YAML conformance scenario item")
        try:
            scenario = load_scenario(self.path, root)
        except ScenarioError as err:
            raise self.CollectError(str(err)) from None
        catalogue = _catalogue(self.config)
        every_region = _all_regions(self.config)
        unknown = [r for r in scenario.regions or [] if r not in every_region]
        if unknown:
            raise self.CollectError(f"{self.path}: unknown region(s) {', '.join(unknown)}")
        for region in catalogue:
            if scenario.applies_to(region.id):
                item = ScenarioItem.from_parent(self, name=f"{scenario.id}[{region.id}]",
                                                scenario=scenario, region=region.id)
                for tag in scenario.tags:
                    self.config.addinivalue_line("markers", f"{tag}: scenarios of feature {tag}")
                    item.add_marker(getattr(pytest.mark, tag))
                item.add_marker(pytest.mark.scenario)
                yield item


def _all_regions(config: pytest.Config) -> dict[str, Any]:
    cached = getattr(config, "_siptwin_catalogue", None)
    if cached is None:  # read the region files once per session, not once per scenario file
        cached = config._siptwin_catalogue = Catalogue.load(default_catalogue_dir())  # type: ignore[attr-defined]
    return cached.regions


def _catalogue(config: pytest.Config) -> Catalogue:
    _all_regions(config)
    catalogue: Catalogue = config._siptwin_catalogue  # type: ignore[attr-defined]
    chosen = config.getoption("--siptwin-regions")
    return catalogue.select(chosen.split(",")) if chosen else catalogue


class ScenarioFailed(Exception):
    def __init__(self, result: ItemResult) -> None:
        super().__init__(result.scenario)
        self.result = result


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, region: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.region = region

    def runtest(self) -> None:
        runner = worker_runner(self.config)
        result, began, ended = runner.result_of(self)
        extra = {}
        if runner.capture is not None:  # --siptwin-pcap: this item's window of the worker's capture
            pcap = runner.capture.item(item_file_name(result.scenario, result.region), began,
                                       ended)
            extra["pcap"] = str(pcap.resolve())
        _write_result(self.config, result, extra)
        self.user_properties.append(("outcome", result.outcome))
        if result.outcome != "passed":
            raise ScenarioFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return describe(excinfo.value.result)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.scenario.id}[{self.region}]: {self.scenario.title}"


def describe(result: ItemResult) -> str:
    lines = [f"{result.scenario}[{result.region}] {result.outcome.upper()}: {result.title}",
             f"  pins: {', '.join(result.pins)}"]
    if result.error:
        lines.append(f"  broken: {result.error}")
    for failure in result.failures:
        lines.append(f"  {failure.kind}: {failure.message}")
        lines.append(f"    expected: {failure.expected!r}")
        lines.append(f"    actual:   {failure.actual!r}")
    if result.messages:
        lines.append("  SIP:")
        lines += [f"    {'>>' if m['direction'] == 'out' else '<<'} {m['first_line']}"
                  for m in result.messages]
    return "\n".join(lines)


def _write_result(config: pytest.Config, result: ItemResult,
                  extra: dict[str, Any] | None = None) -> None:
    directory = Path(config.getoption("--siptwin-results-dir"))
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{result.scenario}__{result.region}")
    record = {**result.as_record(), **(extra or {})}
    # Not indented: json's C encoder handles only that (indented, the pure-Python one took
    # about 3 % of a suite worker's CPU); the HTML report reads it the same.
    (directory / f"{name}.json").write_text(json.dumps(record, default=str))


# ---------------------------------------------------------------------------- the worker's twin


class TwinRunner:
    """An embedded twin and a webhook receiver on an event loop in a background thread."""

    def __init__(self, config: pytest.Config) -> None:
        # uvloop when installed, as ``siptwin up`` serves: the twin, its REST API and webhooks,
        # the receiver and the items all run on this loop, and asyncio's own loop was about a
        # tenth of a worker's CPU.
        self.loop = new_event_loop()
        # SDK calls and peer processes of concurrent items each hold a thread while they wait.
        self._executor = ThreadPoolExecutor(16, thread_name_prefix="siptwin-item")
        self.loop.set_default_executor(self._executor)
        self.batches = _batches_allowed(config)
        self.shares = _shares_of_workers(config)  # 0: no share of the suite (schedule.py)
        self._share: set[str] | None = None  # node ids of this worker's share, once known
        self._waiting: dict[str, Future[tuple[ItemResult, float, float]]] = {}  # nodeid -> result
        self._started: set[str] = set()  # items whose batch has started
        self._wait_limit = ITEM_TIMEOUT + 30.0
        self._batches: set[asyncio.Task[Any]] = set()  # batches running on the loop
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="siptwin-scenarios")
        self.thread.start()
        backend = config.getoption("--siptwin-backend")
        self.state = Path(tempfile.mkdtemp(prefix="siptwin-scenarios-", dir=_state_parent(backend)))
        self.engine: Any = None  # the docker backend's own dockerd
        catalogue = _catalogue(config).relocated(worker_network())
        catalogue = Catalogue([replace(r, udp_port=0, tcp_port=0, tls_port=0) for r in catalogue])
        settings = config.getoption("--siptwin-settings")
        fidelity = load_fidelity(Path(settings) if settings else None,
                                 config.getoption("--siptwin-profile"))
        twin_config = TwinConfig(state_dir=self.state, api_port=0, dns_port=0,
                                 fidelity=fidelity, catalogue=catalogue)
        try:
            self.twin, self.engine = make_twin(backend, twin_config)
        except BaseException:
            self._abandon()
            raise
        # Region namespaces reach the app through the bridge, not the root's loopback.
        self.receiver = WebhookReceiver(getattr(self.twin, "gateway", "127.0.0.1"))
        self.capture: SessionCapture | None = None
        try:
            if config.getoption("--siptwin-pcap"):
                self.capture = SessionCapture(Path(config.getoption("--siptwin-pcap")), worker_network(),
                                              os.environ.get("PYTEST_XDIST_WORKER", "gw0"))
                self.capture.start()
            self.run(self._start())
        except BaseException:
            self.close()  # stop whatever did start: regions, receiver, capture, dockerd
            raise
        location = config.getoption("--siptwin-caller-location")
        if location:
            from ..twin.locations import apply_caller_location

            apply_caller_location(self.twin, location)
        self.environment = Environment(self.twin, self.receiver)
        # What is alive now (the collected items, the modules, the running twin) lasts as
        # long as the worker: frozen, the collector's full passes during the items and the
        # five that pytest makes at its exit walk only what the items made.
        settle_for_serving()

    async def _start(self) -> None:
        await self.twin.start()
        await self.receiver.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = ITEM_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def result_of(self, item: ScenarioItem) -> tuple[ItemResult, float, float]:
        """The item's result and the wall-clock window it ran in. The first item of a batch
        starts the batch (batch.py): the worker's share of the suite when it has one, else the
        items of its scenario file still to come; later items wait for their own result,
        which comes as soon as that item ends, not when the whole batch does."""
        future = self._waiting.pop(item.nodeid, None)
        if future is None:
            batch = self._batch_of(item)
            self._started.update(i.nodeid for i in batch)
            futures = self._launch(batch)
            future = futures.pop(item.nodeid)
            self._waiting.update(futures)
        result, began, ended = future.result(self._wait_limit)
        if (result.scenario, result.region) != (item.scenario.id, item.region):
            raise RuntimeError(f"{item.nodeid} got the result of "
                               f"{result.scenario}[{result.region}]")
        return result, began, ended

    def _batch_of(self, item: ScenarioItem) -> list[ScenarioItem]:
        if not self.batches:
            return [item]
        if self._share is None:
            self._share = _share_of(item.session, self.shares) if self.shares else set()
        if item.nodeid in self._share:
            return [item] + [other for other in item.session.items
                             if isinstance(other, ScenarioItem) and other.nodeid in self._share
                             and other is not item and other.nodeid not in self._started]
        return _file_batch_of(item, self._started)

    def _launch(self, batch: list[ScenarioItem]) -> dict[str, Future[tuple[ItemResult, float, float]]]:
        """Start ``batch`` on the loop; one future per item, set as that item ends."""
        futures: dict[str, Future[tuple[ItemResult, float, float]]] = {
            i.nodeid: Future() for i in batch}
        order = [futures[i.nodeid] for i in batch]

        def done(index: int, result: ItemResult, began: float, ended: float) -> None:
            order[index].set_result((result, began, ended))

        def failed(running: Future[Any]) -> None:
            error = None if running.cancelled() else running.exception()
            if error is not None:  # a fault of the harness, not of an item: every item sees it
                for future in order:
                    if not future.done():
                        future.set_exception(error)

        async def tracked() -> list[ItemResult]:
            task = asyncio.current_task()
            assert task is not None
            self._batches.add(task)
            try:
                return await run_batch([(i.scenario, i.region) for i in batch],
                                       self.environment, done=done)
            finally:
                self._batches.discard(task)

        running = asyncio.run_coroutine_threadsafe(tracked(), self.loop)
        running.add_done_callback(failed)
        self._wait_limit = max(self._wait_limit, ITEM_TIMEOUT * len(batch) + 30)
        return futures

    def _abandon(self) -> None:
        """Stop the engine and the loop thread and remove the state: what must happen even
        when the twin never started."""
        if self.engine is not None:
            self.engine.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self._executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def close(self) -> None:
        async def stop() -> None:
            # A session cut short (-x, --maxfail, Ctrl-C) leaves items of a batch that pytest
            # will never ask for: they end (and clean up) before the twin stops under them.
            running = list(self._batches)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await self.receiver.close()
            await self.twin.stop()

        try:
            self.run(stop())
            if self.capture is not None:
                self.capture.stop_and_split()
        finally:
            self._abandon()


def _batches_allowed(config: pytest.Config) -> bool:
    """Whether this worker runs the items of a scenario file together: the embedded twin
    (other backends keep one item at a time), no per-item packet capture (its windows would
    overlap), and a scheduling that gives the worker all of a file's items (schedule.py)."""
    if config.getoption("--siptwin-backend") != "embedded" or config.getoption("--siptwin-pcap"):
        return False
    workerinput = getattr(config, "workerinput", None)
    return workerinput is None or bool(workerinput.get("siptwin_scenario_batches"))


SHARES_KEY = "siptwin_scenario_shares"  # set by schedule.py when it deals scenario items in shares


def _shares_of_workers(config: pytest.Config) -> int:
    """How many shares the suite's scenario items are dealt in (shares.deal): one per xdist
    worker when the scheduler deals them so (schedule.py), one in a run without xdist, none
    (0) with a scheduling that deals them otherwise."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return 1
    return int(workerinput["workercount"]) if workerinput.get(SHARES_KEY) else 0


def _share_of(session: pytest.Session, shares: int) -> set[str]:
    """Node ids of this worker's share; the scheduler sends the same ones (schedule.py)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    dealt = deal([i.nodeid for i in session.items], shares)
    return {nodeid for nodeid, share in dealt.items() if share == index}


def _file_batch_of(item: ScenarioItem, started: set[str]) -> list[ScenarioItem]:
    """The item and the other items of its scenario file that have not run yet."""
    return [item] + [other for other in item.session.items
                     if isinstance(other, ScenarioItem) and other.parent is item.parent
                     and other is not item and other.nodeid not in started]


def _state_parent(backend: str) -> str | None:
    """Where the worker's throwaway twin keeps its SQLite file: in memory (/dev/shm) for the
    embedded twin, whose every REST write otherwise waits for an fsync of a disk that five
    other jobs may be writing to (2-90 ms per write seen); the default temporary folder for
    backends whose processes or containers may not see /dev/shm."""
    shm = Path("/dev/shm")
    if backend == "embedded" and shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


def worker_network() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"127.0.{200 + index % 50}.0/24"


def worker_runner(config: pytest.Config) -> TwinRunner:
    runner = getattr(config, "_siptwin_runner", None)
    if runner is None:
        failed = getattr(config, "_siptwin_start_failure", None)
        if failed is not None:
            # One attempt per worker: every later item reports the same cause at once
            # instead of starting (and failing) another twin.
            raise RuntimeError(f"the twin could not start: {failed}") from failed
        try:
            runner = config._siptwin_runner = TwinRunner(config)  # type: ignore[attr-defined]
        except Exception as err:
            config._siptwin_start_failure = err  # type: ignore[attr-defined]
            raise
    return runner


def stop_runner(config: pytest.Config) -> None:
    """Stop this worker's twin at the end of the session, if it started one."""
    started = getattr(config, "_siptwin_runner", None)
    if started is not None:
        started.close()
        config._siptwin_runner = None  # type: ignore[attr-defined]
        if hasattr(config, "workerinput"):
            # An xdist worker exits next; pytest's clean-up collects five times over (for
            # unraisable exceptions in garbage cycles), each pass walking every call record
            # and result the items left: 0.3 s per worker. One pass here finds the same
            # garbage while pytest still listens; then what is left is frozen for the rest.
            gc.collect()
            gc.freeze()
