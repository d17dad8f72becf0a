"""The results directory findings are written to (the twin fixtures are tests/conftest.py's)."""

from __future__ import annotations

import pytest


@pytest.fixture
def results_dir(pytestconfig) -> str:
    return pytestconfig.getoption("--results-dir")
