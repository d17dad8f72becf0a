"""The admission rate a node sets for new calls while a queue stands in its receive buffer
(regions/overload.py: AdmissionRate), as arithmetic of times and counts, and in a model
of a node under SIPp load (overload_model.py) where it must shed only the excess."""

from __future__ import annotations

import pytest

from siptwin.regions.overload import QUIET_TICKS, RATE_FLOOR, AdmissionRate, OverloadGuard

from . import overload_model


def test_under_a_standing_queue_new_calls_are_admitted_at_the_rate_calls_complete():
    rate = AdmissionRate(target=0.2)
    assert rate.take() and rate.rate is None  # no queue: every new call
    # The node completes 300 setups a second; no queue yet.
    for _ in range(60):
        assert not rate.tick(0.05, completed=15, shed=0, standing=False, least_wait=0.01)
    assert rate.rate is None and rate.completing == pytest.approx(300, abs=0.1)
    rate.completing = 300.0  # exactly, so that the token counts below are whole
    # A queue stands, at the target wait: admit what completes, 15 a tick, spread evenly.
    assert rate.tick(0.05, completed=15, shed=0, standing=True, least_wait=0.2)
    assert round(rate.rate) == 300
    assert sum(rate.take() for _ in range(100)) == 15
    # Longer than the target: fewer (0.75x at 1.5 times it, at most 0.7x)...
    rate.tick(0.05, completed=15, shed=85, standing=True, least_wait=0.3)
    assert round(rate.rate) == 225 and sum(rate.take() for _ in range(100)) == 11
    rate.tick(0.05, completed=15, shed=89, standing=True, least_wait=0.9)
    assert round(rate.rate) == 210
    # ...shorter: more (up to 1.2x with no queue), so the node finds its room again.
    rate.tick(0.05, completed=15, shed=90, standing=False, least_wait=0.16)
    assert round(rate.rate) == 330
    rate.tick(0.05, completed=15, shed=90, standing=False, least_wait=0.0)
    assert round(rate.rate) == 360
    # The rate follows completions, not its own past: a node that completes less (starved
    # of CPU by other work) admits less within a few ticks, and more again after.
    for _ in range(10):
        rate.tick(0.05, completed=5, shed=40, standing=True, least_wait=0.2)
    assert 100 < rate.rate < 130
    for _ in range(10):
        rate.tick(0.05, completed=15, shed=40, standing=True, least_wait=0.2)
    assert 270 < rate.rate < 300
    # A late tick brings tokens for as long; unused tokens lapse (no burst after a lull).
    rate.tick(0.2, completed=60, shed=0, standing=True, least_wait=0.2)
    assert 55 < rate.tokens < 65
    rate.tick(0.05, completed=15, shed=0, standing=True, least_wait=0.2)
    assert rate.tokens <= rate.rate * 0.05
    # A second with neither a queue nor a call shed: unlimited again.
    for _ in range(QUIET_TICKS):
        assert rate.rate is not None
        rate.tick(0.05, completed=15, shed=0, standing=False, least_wait=0.0)
    assert rate.rate is None and rate.take()
    # Never below the floor: a node with a queue and nothing completing still takes a few.
    rate = AdmissionRate(target=0.2)
    assert rate.tick(0.05, completed=0, shed=0, standing=True, least_wait=0.2)
    assert rate.rate == RATE_FLOOR


@pytest.mark.parametrize("stalls", [None, (0.3, 0.15)], ids=["steady", "descheduled"])
def test_offered_twice_what_it_sustains_a_node_sheds_only_the_excess(stalls):
    """The model of a node under SIPp (tests/regions/overload_model.py: one CPU, a FIFO
    receive queue, callers that retransmit, the node descheduled now and then): offered
    1.15x and 2x the rate it sustains, it still completes at least 90 % of that rate, gives
    up no call it took, and answers within the callers' first retransmission."""
    def guard() -> OverloadGuard:
        return OverloadGuard(lag_limit=0.25, message_rate=1000.0, wait_limit=0.2)

    sustained = 700 if stalls is None else 600
    clean = overload_model.run(guard(), sustained, stalls=stalls, drain=6)
    assert clean.completed == clean.offered and not clean.shed
    for factor in (1.15, 2.0):
        outcome = overload_model.run(guard(), factor * sustained, stalls=stalls, drain=6)
        assert outcome.completed / 5 >= 0.9 * sustained, (factor, outcome)
        assert outcome.failed == 0 and outcome.retransmissions == 0, (factor, outcome)
        assert outcome.completed + outcome.shed == outcome.offered
        assert outcome.latest_wait < 0.5
