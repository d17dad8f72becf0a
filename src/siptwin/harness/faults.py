"""Faults as a scenario action: stop, blackhole, slow down or degrade a region.

``when: { fault: { kind: blackhole } }`` acts on the item's region (or ``region: de1``); every
fault is undone when the item ends, so items stay independent. Backends offer
``stop_region``/``start_region``/``blackhole_region``/``impair_region``.
"""

from __future__ import annotations

import time
from typing import Any

from ..twin.config import Twin

KINDS = ("stop", "start", "blackhole", "impair", "restore")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind"],
    "properties": {
        "kind": {"enum": list(KINDS)},
        "region": {"type": "string"},
        "latency_ms": {"type": "number", "minimum": 0, "maximum": 10000},
        "loss_percent": {"type": "number", "minimum": 0, "maximum": 100},
    },
}


async def inject(twin: Twin, region_id: str, params: dict[str, Any], active: dict[str, str]) -> str:
    """Apply one fault; ``active`` remembers what to undo per region. Returns a trace line."""
    kind = params["kind"]
    if kind == "stop":
        await twin.stop_region(region_id)
        active[region_id] = "stopped"
    elif kind == "start":
        await twin.start_region(region_id)
        active.pop(region_id, None)
    elif kind == "blackhole":
        twin.blackhole_region(region_id)
        active[region_id] = "impaired"
    elif kind == "impair":
        twin.impair_region(region_id, params.get("latency_ms", 0.0), params.get("loss_percent", 0.0))
        active[region_id] = "impaired"
    else:  # restore
        await _undo(twin, region_id, active.pop(region_id, ""))
    detail = ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("kind", "region"))
    return f"fault: {kind} {region_id}" + (f" ({detail})" if detail else "")


async def restore_all(twin: Twin, active: dict[str, str]) -> None:
    for region_id, state in list(active.items()):
        await _undo(twin, region_id, state)
    active.clear()


async def _undo(twin: Twin, region_id: str, state: str) -> None:
    if state == "stopped":
        await twin.start_region(region_id)
    elif state == "impaired":
        twin.impair_region(region_id)


def trace_line(text: str) -> tuple[float, bytes]:
    return time.time(), text.encode()
