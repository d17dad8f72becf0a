"""Diagnostics: explain every failed or risky call in plain words, with the fix.

Named rules (``rules/``), each a small function over what the twin recorded for one call -
the SIP messages both ways, transport and source, matched domain and region, mapped lists,
the digest exchange, the SDP, the webhook exchange - and over the configuration around it
(ACLs in another region or not mapped, registration disabled). A rule yields
:class:`Finding` s: an id, a severity (``error``: why this call failed; ``warning``: will
bite in production), a plain sentence, the evidence, the fix and the Twilio error code.

    findings = explain(twin, call_id)        # a running twin (siptwin.twin)
    findings = diagnose_call(call, catalogue=..., control=..., database=...)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..cloud.view import ControlPlaneView
from ..model.calls import Call, CallLookup, find_call
from ..model.findings import ERROR, SEVERITIES, WARNING, Finding
from ..regions.catalogue import Catalogue
from .engine import RULES, diagnose, finding_ids
from .facts import CallFacts
from .text import format_findings

if TYPE_CHECKING:
    from ..cloud.store import Store

__all__ = [
    "ERROR", "RULES", "SEVERITIES", "WARNING", "CallFacts", "Finding", "diagnose",
    "diagnose_call", "explain", "find_call", "finding_ids", "format_findings",
]


def diagnose_call(call: Call, *, catalogue: Catalogue | None = None,
                  control: ControlPlaneView | None = None,
                  database: Path | None = None) -> list[Finding]:
    """Findings for one recorded call; ``control`` (or a view opened on ``database``) adds
    the configuration around it. A database that cannot be read is an error, not silence."""
    if catalogue is None:
        from ..regions.catalogue import default_catalogue_dir

        catalogue = Catalogue.load(default_catalogue_dir())
    if control is None and database is None:
        return diagnose(CallFacts(call, catalogue))
    view = control if control is not None else ControlPlaneView(database)  # type: ignore[arg-type]
    try:
        domain = view.find_domain(call.domain_name) if call.domain_name else None
        return diagnose(CallFacts(call, catalogue, domain, view))
    finally:
        if view is not control:
            view.close()


class RunningTwin(Protocol):
    """What :func:`explain` reads of a running twin (``siptwin.twin.config.Twin`` has it)."""

    @property
    def calls(self) -> CallLookup: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def control(self) -> ControlPlaneView | None: ...
    catalogue: Catalogue


def explain(twin: RunningTwin, ref: str) -> list[Finding]:
    """Findings for a call of a running twin, by CallSid, Call-ID or ``last``."""
    call = find_call(twin.calls, ref)
    if call is None:
        return []
    database = twin.store.path if twin.store is not None else None
    return diagnose_call(call, catalogue=twin.catalogue, control=twin.control, database=database)


