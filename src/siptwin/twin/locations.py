"""Caller locations: a realistic round-trip time from a PBX's city to every edge."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..regions.catalogue import CatalogueError, default_catalogue_dir
from .config import Twin


def rtt_table(catalogue_dir: Path | None = None) -> dict[str, dict[str, float]]:
    path = (catalogue_dir or default_catalogue_dir()) / "profiles" / "caller-rtt.yaml"
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    return {str(k): {str(r): float(ms) for r, ms in v.items()} for k, v in (data or {}).items()}


def one_way_latencies(location: str, catalogue_dir: Path | None = None) -> dict[str, float]:
    """Per region, the one-way delay (ms) to add in each direction for callers at ``location``."""
    table = rtt_table(catalogue_dir)
    if location not in table:
        raise CatalogueError(f"unknown caller location {location!r}; known: {', '.join(table)}")
    return {region: rtt / 2 for region, rtt in table[location].items()}


def apply_caller_location(twin: Twin, location: str) -> dict[str, float]:
    """Impair every region of a running twin as seen from ``location``; returns the delays."""
    latencies = one_way_latencies(location)
    for region in twin.catalogue:
        if region.id in latencies:
            twin.impair_region(region.id, latency_ms=latencies[region.id])
    return latencies
