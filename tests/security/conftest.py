"""Fixtures of the attack suite: the results directory findings are written to, and a twin
with some resource limits changed (the plain twin fixtures are tests/conftest.py's)."""

from __future__ import annotations

import pytest

from siptwin.limits import Limits
from tests.support.twin import Harness, embedded_twin


@pytest.fixture
def results_dir(pytestconfig) -> str:
    return pytestconfig.getoption("--siptwin-results-dir")


@pytest.fixture
async def limited_twin(tmp_path):
    """Start a twin with some resource limits changed: ``await limited_twin(name=value)``."""
    started = []

    async def start(**limits):
        instance = embedded_twin(tmp_path / f"state{len(started)}", Limits(**limits))
        await instance.start()
        started.append(instance)
        return Harness(instance)

    yield start
    for instance in started:
        await instance.stop()
