"""Domains shared between scenario items (harness/fixtures.py): shared where nothing can leak,
private where an item changes something, and an item's settings never reach the next one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from siptwin.harness.fixtures import plan_key
from siptwin.harness.scenario import load_scenario
from tests.support import REPO

PLAN = 'domain: { label: acme, acl: ["127.0.0.1"] }'

# Collected in this order on one worker, in each of two regions.
SCENARIOS = {
    # Shares the plan and changes a setting: the unlisted caller now hears a 403.
    "a-reject-setting.yaml": f"""
title: a shared domain under a changed setting
pins: [test]
given:
  {PLAN}
  settings: {{ acl_miss: reject }}
when: {{ invite: {{ source: 127.0.0.2 }} }}
then: {{ final: 403 }}
""",
    # Removes its own ACL entry through the API: must get a domain nobody else uses.
    "b-removes-acl-entry.yaml": f"""
title: a domain whose ACL entry the scenario deletes
pins: [test]
given:
  {PLAN}
steps:
  - when:
      rest: {{ method: DELETE, path: "/SIP/IpAccessControlLists/{{{{ acl_sid }}}}/IpAddresses/{{{{ acl_entry_sid }}}}.json" }}
    then: {{ http_status: 204 }}
  - when: {{ invite: {{ source: 127.0.0.1 }} }}
    then: {{ no_answer_within: 0.2 }}
""",
    # After both: the default setting (drop) and the ACL as provisioned.
    "c-defaults.yaml": f"""
title: the next item on the shared domain sees neither change
pins: [test]
given:
  {PLAN}
steps:
  - when: {{ invite: {{ source: 127.0.0.2 }} }}
    then: {{ no_answer_within: 0.2, call: {{ status: dropped }} }}
  - when: {{ invite: {{ source: 127.0.0.1 }} }}
    then: {{ responses: [100, 180, 200], webhook: {{ count: 1 }} }}
""",
}


def test_a_shared_domain_carries_no_change_from_one_item_to_the_next(tmp_path: Path) -> None:
    root = tmp_path / "suite"
    root.mkdir()
    (root / ".siptwin-scenarios").write_text("")
    for name, text in SCENARIOS.items():
        (root / name).write_text(text)
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(root), "-p", "no:xdist", "-p", "no:cacheprovider",
         "-q", "--siptwin-regions", "us1,ie1", "--siptwin-results-dir", str(results)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = {(r["scenario"], r["region"]): r
               for r in (json.loads(p.read_text()) for p in results.glob("*.json"))}
    assert len(records) == 6

    def domains(scenario: str, *regions: str) -> set[str]:
        return {call["domain"] for region in regions or ("us1", "ie1")
                for call in records[(scenario, region)]["calls"]}

    # The two regions of a scenario run at the same time (harness/batch.py): each holds a
    # domain of its own, and the next scenario of the plan borrows those two again.
    assert not domains("a-reject-setting", "us1") & domains("a-reject-setting", "ie1")
    assert not domains("c-defaults", "us1") & domains("c-defaults", "ie1")
    shared = domains("a-reject-setting")
    assert len(shared) == 2 and domains("c-defaults") == shared, records
    # b's dropped calls name the domain they were sent to: one of its own in each region.
    private = domains("b-removes-acl-entry")
    assert len(private) == 2 and not private & shared, (private, shared)


def test_only_items_that_change_nothing_share_their_domain(tmp_path: Path) -> None:
    for name, text in SCENARIOS.items():
        (tmp_path / name).write_text(text)
    keys = {name: plan_key(load_scenario(tmp_path / name, tmp_path)) for name in SCENARIOS}
    assert keys["a-reject-setting.yaml"] == keys["c-defaults.yaml"] is not None
    assert keys["b-removes-acl-entry.yaml"] is None
    scenarios = REPO / "scenarios"
    private = {path.relative_to(scenarios).as_posix() for path in scenarios.rglob("*.yaml")
               if plan_key(load_scenario(path, scenarios)) is None}
    # A registration, a sub-domain, a REST change, a peer: each keeps a domain of its own.
    for kept in ("acl/entry-removed.yaml", "dial/registered-device.yaml",
                 "subdomains/delete-parent.yaml", "interop/sipp-authenticated.yaml"):
        assert kept in private, kept
    assert "acl/ip-listed.yaml" not in private


def test_a_seat_keeps_a_previous_holders_late_webhooks_from_the_next_holder() -> None:
    """A shared domain's webhook URLs name a receiver seat (harness/receiver.py): a request
    reaches the slot of the item holding it only for a call that began after that item took
    the seat; an earlier item's late status callback gets 404, as at its own released URL."""
    import asyncio
    import time

    import aiohttp

    from siptwin.harness.receiver import WebhookReceiver

    created: dict[str, float] = {}

    async def call_created(sid: str) -> float | None:
        return created.get(sid)

    async def scenario() -> None:
        receiver = WebhookReceiver(call_created=call_created)
        await receiver.start()
        try:
            seat = receiver.seat()
            first, second = receiver.slot(), receiver.slot()
            async with aiohttp.ClientSession() as http:

                async def status(sid: str) -> int:
                    async with http.post(receiver.url(seat, "status"),
                                         data={"CallSid": sid, "CallStatus": "completed"}) as r:
                        return r.status

                receiver.take_seat(seat, first)
                created["CA1"] = time.time()
                assert await status("CA1") == 204
                receiver.leave_seat(seat)
                assert await status("CA1") == 404  # nobody holds the seat
                await asyncio.sleep(0.01)
                receiver.take_seat(seat, second)
                created["CA2"] = time.time()
                assert await status("CA1") == 404  # the first holder's call, late
                assert await status("CA-unknown") == 404
                assert await status("CA2") == 204
            assert [r.params["CallSid"] for r in first.requests] == ["CA1"]
            assert [r.params["CallSid"] for r in second.requests] == ["CA2"]
        finally:
            await receiver.close()

    asyncio.run(scenario())
