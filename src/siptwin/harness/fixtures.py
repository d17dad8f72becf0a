"""Domains shared between scenario items of one test worker.

Provisioning a domain with its ACL and credential lists through the SDK takes 5-10 REST
round trips, and removing it 2-3 more: most of an item's own time.  Most scenarios ask for
one of a dozen plans ("acme with ACL 127.0.0.1", "acme with alice's credentials", ...) and
change nothing in it, so a worker provisions each plan once and lends the domain to every
such item in every region. The domain's webhook URLs are those of a receiver seat
(receiver.py) that the item holding the domain takes: its requests reach that item's slot,
while a late webhook or status callback of an earlier item's call (one that began before
the item took the seat) gets 404, never the next item. Before the seats, every lending
rewrote the domain's URLs through the SDK: one REST update per item, about a twentieth of
a suite worker's CPU with the twin's side of it.

What an item may change is never shared: a scenario with a REST step (it may edit or delete
its ACL, credentials or the domain), a REGISTER or a phone (bindings outlive the item), a
peer (SIPp, a PBX: its calls are found by domain and time), a sub-account, a sub-domain, a
domain owned by a sub-account, or a domain spec with templates gets a private domain as
before, removed when it ends.  Settings (``given.settings``) and faults are undone by the
engine after every item, shared domain or not.  Items that run at the same time (batch.py)
never hold the same domain: the pool lends each idle domain to one item and provisions
another of the plan when none is idle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .provision import Provisioned
from .receiver import Seat
from .scenario import Scenario

# Steps that can leave something behind in the domain or read other items' calls on it.
PRIVATE_ACTIONS = frozenset({"rest", "register", "phone", "sipp", "pbx"})


def plan_key(scenario: Scenario) -> str | None:
    """What makes two items' domains interchangeable, or None when the item needs its own."""
    given = scenario.given
    domain = given.get("domain", {})
    if domain is None or given.get("subaccount") is not None or given.get("subdomain") is not None:
        return None
    domain = domain or {}
    if "owner" in domain or "{{" in json.dumps(domain):
        return None
    for step in scenario.steps:
        if step.action in PRIVATE_ACTIONS:
            return None
        message = str(step.params.get("message", "")) if step.action == "raw" else ""
        if message.lstrip().upper().startswith("REGISTER"):
            return None
    app = given.get("app") or {}
    shape = {**domain, "label": domain.get("label", "acme"), "fallback": "fallback" in app,
             "status_callback": bool(app.get("status_callback", True))}
    return json.dumps(shape, sort_keys=True, default=str)


@dataclass
class Shared:
    """A shared domain and the receiver seat its webhook URLs name."""

    provisioned: Provisioned
    seat: Seat


class DomainPool:
    """Idle shared domains of one worker, by :func:`plan_key`: several per plan when items of
    one plan run at the same time (batch.py), each lent to one item at a time."""

    def __init__(self) -> None:
        self._idle: dict[str, list[Shared]] = {}
        self.provisioned = 0  # domains created for sharing
        self.lent = 0  # items that borrowed one already there

    def take(self, key: str) -> Shared | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        self.lent += 1
        return idle.pop()

    def give_back(self, key: str, shared: Shared) -> None:
        self._idle.setdefault(key, []).append(shared)

    def idle(self) -> dict[str, list[Shared]]:
        return {key: list(domains) for key, domains in self._idle.items() if domains}
