from __future__ import annotations

from siptwin.diagnostics import Finding, explain
from tests.regions.conftest import PASSWORD, Harness, harness, twin  # noqa: F401 - fixtures
from tests.voice.conftest import app  # noqa: F401 - the webhook application fixture

__all__ = ["PASSWORD", "Harness", "by_id"]


def by_id(twin, call_id: str) -> dict[str, Finding]:  # noqa: F811
    """The findings of one call, by id."""
    return {f.id: f for f in explain(twin, call_id)}
