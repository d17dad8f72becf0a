"""Real devices against the twin: the twin and harness fixtures of tests/regions."""

from __future__ import annotations

from ..regions.conftest import harness, twin  # noqa: F401 - fixtures

PASSWORD = "Harbour7Lights"
