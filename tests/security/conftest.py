"""The twin of tests/regions, and the results directory findings are written to."""

from __future__ import annotations

import pytest

from ..regions.conftest import harness, twin  # noqa: F401 - fixtures

PASSWORD = "Harbour7Lights"


@pytest.fixture
def results_dir(pytestconfig) -> str:
    return pytestconfig.getoption("--siptwin-results-dir")
