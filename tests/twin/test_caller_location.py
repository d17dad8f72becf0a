"""Caller-location profiles: each edge as far away as it is from the PBX's city."""

from __future__ import annotations

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.regions.catalogue import CatalogueError
from siptwin.twin.locations import apply_caller_location, one_way_latencies, rtt_table
from siptwin.ua.client import Auth
from tests.support import PASSWORD


def test_every_location_has_a_figure_for_every_region() -> None:
    table = rtt_table()
    assert {"london", "sydney", "new-york"} <= set(table)
    for figures in table.values():
        assert set(figures) == {"us1", "us2", "ie1", "de1", "sg1", "jp1", "br1", "au1"}
    assert one_way_latencies("london")["ie1"] == 6


def test_an_unknown_location_is_a_clear_error() -> None:
    with pytest.raises(CatalogueError, match="unknown caller location 'atlantis'"):
        one_way_latencies("atlantis")


async def test_a_far_edge_answers_later_than_a_near_one(harness) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    latencies = apply_caller_location(harness.twin, "sydney")
    near = await harness.call("au1", "sip:1@acme.sip.au1.twilio.com", auth=Auth("alice", PASSWORD))
    far = await harness.call("us1", "sip:1@acme.sip.us1.twilio.com", auth=Auth("alice", PASSWORD))
    assert near.statuses[-1] == 200 and far.statuses[-1] == 200

    def first_answer(result) -> float:
        sent = next(m for m in result.messages if m.direction == "out")
        return next(m for m in result.messages if m.direction == "in").at - sent.at

    # A round trip is at least twice the one-way delay added at the edge (200 ms from Sydney).
    assert first_answer(far) >= 2 * latencies["us1"] / 1000
