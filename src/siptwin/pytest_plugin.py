"""siptwin's pytest entry point (``pytest11``), inert unless a run asks for scenarios.

Installing siptwin loads this module into every pytest run of the environment, so it imports
only the standard library at load time, adds only ``--siptwin-*`` options, and turns a YAML
file into items only below a scenario root that opted in:

- a folder holding a ``.siptwin-scenarios`` marker file (``scenarios/`` of the repository),
- a folder named by the ``siptwin_scenarios`` ini option, or
- a folder given with ``--siptwin-scenarios DIR`` (``siptwin run`` passes its paths so).

The scenario machinery (``siptwin.harness.plugin``) and what it needs from the ``suite``
extra (the twilio SDK, jsonschema, ...) are imported when the first scenario file is collected.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

# The opt-in rule lives with the suite, in a module of the standard library alone.
from .harness.optin import MARKER, marked_args, scenario_root

SUITE_EXTRA = "siptwin[suite]"
MACHINERY = "siptwin.harness.plugin"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("siptwin", "siptwin conformance scenarios")
    group.addoption("--siptwin-scenarios", action="append", default=[], metavar="DIR",
                    help=f"collect the YAML scenarios under DIR (a folder holding a {MARKER} "
                         "file opts in without this)")
    group.addoption("--siptwin-report", default=None, metavar="FILE",
                    help="write the HTML conformance report to FILE (e.g. reports/conformance.html)")
    group.addoption("--siptwin-results-dir", default="reports/results", metavar="DIR",
                    help="one JSON result per scenario item (default reports/results)")
    group.addoption("--siptwin-regions", default=None, metavar="IDS",
                    help="run scenarios only in these regions (comma-separated)")
    group.addoption("--siptwin-settings", default=None, metavar="FILE",
                    help="fidelity settings (YAML) for the whole run; scenarios override on top")
    group.addoption("--siptwin-pcap", default=None, metavar="DIR",
                    help="capture each item's packets on the node addresses into DIR/<item>.pcap "
                         "(dumpcap on lo, root; linked from the report)")
    group.addoption("--siptwin-backend", default="embedded",
                    choices=("embedded", "process", "netns", "docker"),
                    help="the twin in this process (default), one process per region, one "
                         "network namespace per region, or one container per region (root)")
    group.addoption("--siptwin-caller-location", default=None, metavar="CITY",
                    help="each region's round-trip time as seen from CITY (e.g. london)")
    group.addoption("--siptwin-profile", default=None, choices=("seed", "observed"),
                    help="fidelity profile for the whole run (default seed)")
    parser.addini("siptwin_scenarios", type="paths", default=[],
                  help="folders whose YAML files are siptwin scenarios")


def pytest_configure(config: pytest.Config) -> None:
    roots = [Path(p).resolve() for p in config.getoption("--siptwin-scenarios")]
    roots += [Path(p).resolve() for p in config.getini("siptwin_scenarios")]
    config._siptwin_roots = frozenset(roots)  # type: ignore[attr-defined]
    if not roots and not config.getoption("--siptwin-report") and not marked_args(config):
        return  # nothing of ours was asked for: leave the run alone
    config.addinivalue_line("markers", "scenario: a YAML conformance scenario item")
    if not hasattr(config, "workerinput"):
        results = Path(config.getoption("--siptwin-results-dir"))
        if results.exists():
            shutil.rmtree(results)
        if config.pluginmanager.hasplugin("xdist"):
            # Each worker gets its share of the scenario items at the start, to run them together.
            from .harness.schedule import SchedulingPlugin

            config.pluginmanager.register(SchedulingPlugin(), "siptwin-scheduling")


def machinery() -> Any:
    """The scenario machinery, with a clear word when the suite extra is missing."""
    try:
        __import__(MACHINERY)
    except ImportError as err:
        raise ImportError(f"siptwin scenarios need the suite extra: pip install '{SUITE_EXTRA}' "
                          f"({err})") from err
    return sys.modules[MACHINERY]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".yaml" or file_path.name.startswith("_"):
        return None
    if scenario_root(parent.config, file_path) is None:
        return None
    return machinery().ScenarioFile.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scenario items that drive a real peer (tag ``peer``: a second or more each, against
    tens of milliseconds for the rest) come first, so that the shares dealt from this order
    (harness/shares.py) each get their part of them; other schedulings deal them out to the
    workers at the start instead of leaving them queued on one worker."""
    if MACHINERY not in sys.modules:
        return  # no scenario was collected: leave other projects' order alone

    from .harness.batch import start_rank  # the order a batch starts its items in

    def slow_first(item: pytest.Item) -> int:
        if not item.get_closest_marker("scenario"):
            return 2  # after every scenario item, as start_rank puts the short ones
        return start_rank([marker.name for marker in item.iter_markers()])

    items.sort(key=slow_first)


@pytest.fixture(scope="session")
def siptwin(pytestconfig: pytest.Config) -> Any:
    """The worker's running twin for Python-written scenarios: ``siptwin.run(coroutine)``."""
    return machinery().worker_runner(pytestconfig)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    loaded = sys.modules.get(MACHINERY)
    if loaded is not None:
        loaded.stop_runner(config)
    if hasattr(config, "workerinput"):
        return
    report = config.getoption("--siptwin-report")
    if report:
        from .report.render import render_report

        path = render_report(Path(config.getoption("--siptwin-results-dir")), Path(report))
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"siptwin conformance report: {path}")
