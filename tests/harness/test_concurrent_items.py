"""Scenario items run at the same time (harness/batch.py), those of one file and, with xdist,
those of a worker's whole share (harness/shares.py): each is still judged and reported on its
own, and the twin-wide settings of one round never reach another."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from siptwin.harness.batch import rounds, run_batch
from siptwin.harness.engine import run_item
from siptwin.harness.outcome import Environment
from siptwin.harness.receiver import WebhookReceiver
from siptwin.harness.scenario import load_scenario
from siptwin.harness.shares import deal
from tests.support.suite import run_suite

# Passes where the call is processed in us1, fails elsewhere; the call is held a second, so
# the two regions' calls are up at the same time when the items run together.
ONLY_US1 = """
title: answered, and processed in us1
pins: [test]
given:
  domain: { label: acme, acl: ["127.0.0.1"] }
when: { invite: { to: "sip:1000@{{ host }}", hold: 1 } }
then: { responses: [100, 180, 200], call: { region: us1 } }
"""


# One xdist worker: with two, the two items would be dealt to different workers (shares.py),
# and this test is about items running together in one worker's batch.
@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["in-process", "xdist"])
def test_a_failing_item_of_a_concurrent_batch_is_reported_failed(tmp_path: Path,
                                                                  workers: list[str]) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / ".siptwin-scenarios").write_text("")
    (suite / "only-us1.yaml").write_text(ONLY_US1)
    report = tmp_path / "report.html"
    extra = ["--siptwin-report", str(report), "-rA", *workers] + ([] if workers else
                                                                   ["-p", "no:xdist"])
    code, out, records = run_suite(tmp_path / "run", suite, regions="us1,ie1",
                                   scenarios_dir=suite, extra=extra)
    assert code == 1, out
    assert "1 failed, 1 passed" in out, out
    passed, failed = records[("only-us1", "us1")], records[("only-us1", "ie1")]
    assert passed["outcome"] == "passed" and not passed["failures"], passed
    assert failed["outcome"] == "failed" and failed["failure_kind"] == "call-record-mismatch"
    assert failed["failures"][0]["actual"] == "ie1"
    # pytest's own verdict on each item (-rA lists them all), not only the JSON records.
    verdicts = {line.split("::")[-1].split(" ")[0]: line.split(" ")[0]
                for line in out.splitlines() if line.startswith(("PASSED ", "FAILED "))}
    assert verdicts == {"only-us1[us1]": "PASSED", "only-us1[ie1]": "FAILED"}, out
    # Each judged from its own call and webhook, and they did run at the same time.
    assert [c["region"] for c in passed["calls"]] == ["us1"]
    assert [c["region"] for c in failed["calls"]] == ["ie1"]
    assert passed["calls"][0]["call_id"] != failed["calls"][0]["call_id"]
    assert len(passed["webhooks"]) >= 1 and len(failed["webhooks"]) >= 1
    assert {w["url"] for w in passed["webhooks"]}.isdisjoint(w["url"] for w in failed["webhooks"])

    def window(record: dict) -> tuple[float, float]:
        times = [m["at"] for m in record["messages"]]
        return min(times), max(times)

    (a_start, a_end), (b_start, b_end) = window(passed), window(failed)
    assert a_start < b_end and b_start < a_end, (window(passed), window(failed))
    html = report.read_text()
    assert 'href="#only-us1-us1"' in html and 'href="#only-us1-ie1"' in html


PLAN = 'domain: { label: acme, acl: ["127.0.0.1"] }'
# Keeps its setting in force for two seconds (a held call) before its own check.
REJECTING = f"""
title: an unlisted caller hears 403 under acl_miss reject
pins: [test]
given:
  {PLAN}
  settings: {{ acl_miss: reject }}
steps:
  - when: {{ invite: {{ source: 127.0.0.1, hold: 2 }} }}
    then: {{ final: 200 }}
  - when: {{ invite: {{ source: 127.0.0.2 }} }}
    then: {{ final: 403 }}
"""
DEFAULT = f"""
title: an unlisted caller hears nothing under the default setting
pins: [test]
given:
  {PLAN}
when: {{ invite: {{ source: 127.0.0.2 }} }}
then: {{ no_answer_within: 0.5, call: {{ status: dropped }} }}
"""


async def test_settings_of_one_round_never_reach_an_item_of_another(twin, tmp_path: Path) -> None:
    (tmp_path / "rejecting.yaml").write_text(REJECTING)
    (tmp_path / "default.yaml").write_text(DEFAULT)
    rejecting = load_scenario(tmp_path / "rejecting.yaml", tmp_path)
    default = load_scenario(tmp_path / "default.yaml", tmp_path)
    receiver = WebhookReceiver()
    await receiver.start()
    env = Environment(twin, receiver)
    before = twin.fidelity
    try:
        items = [(rejecting, "us1"), (default, "us1"), (rejecting, "ie1"), (default, "ie1")]
        assert rounds(items) == [({"acl_miss": "reject"}, [0, 2], []), ({}, [1, 3], [])]
        results = await run_batch(items, env)
        assert [r.outcome for r in results] == ["passed"] * 4, [r.failures for r in results]
        assert [r.fidelity["acl_miss"] for r in results] == ["reject", "drop", "reject", "drop"]
        assert twin.fidelity == before

        # What the rounds prevent: the same items, each setting and restoring its own
        # settings, all at once. The default item then calls while the other's setting is
        # in force (its held call), and hears a 403.
        naive = await asyncio.gather(*(run_item(s, region, env.item_view())
                                       for s, region in items))
        assert naive[1].outcome == "failed", naive[1]
        assert naive[1].failures[0].kind == "unexpected-answer"
    finally:
        twin.set_fidelity(before)
        await receiver.close()


def test_a_fault_or_a_container_device_makes_its_items_run_alone(tmp_path: Path) -> None:
    repo_scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    fault = load_scenario(repo_scenarios / "faults" / "stopped-region.yaml", repo_scenarios)
    plain = load_scenario(repo_scenarios / "acl" / "ip-listed.yaml", repo_scenarios)
    assert rounds([(fault, "ie1"), (fault, "sg1")]) == [({}, [], [0, 1])]
    container_root = Path(__file__).resolve().parents[2] / "harness" / "docker" / "scenarios"
    container = load_scenario(container_root / "pbx" / "container-call.yaml", container_root)
    assert rounds([(container, "us1"), (container, "ie1")]) == [({}, [], [0, 1])]
    assert rounds([(plain, "us1"), (plain, "ie1")]) == [({}, [0, 1], [])]
    # In a worker's share, items of other scenarios with the same settings still run
    # together; only the fault's items wait for the rest to end, and then run one by one.
    assert rounds([(fault, "ie1"), (plain, "us1"), (plain, "ie1"), (fault, "sg1")]) == [
        ({}, [1, 2], [0, 3])]


def test_peer_items_start_first_in_their_round(tmp_path: Path) -> None:
    repo_scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    plain = load_scenario(repo_scenarios / "acl" / "ip-listed.yaml", repo_scenarios)
    peer = load_scenario(repo_scenarios / "interop" / "pjsua2-srtp-hold.yaml", repo_scenarios)
    assert rounds([(plain, "us1"), (peer, "us1"), (plain, "ie1"), (peer, "ie1")]) == [
        ({}, [1, 3, 0, 2], [])]
    # The longest by design (tag long: its call is held eight seconds) before other peers.
    other_peer = load_scenario(repo_scenarios / "interop" / "pjsua2-scripted-uac.yaml",
                               repo_scenarios)
    assert "long" in peer.tags and "long" not in other_peer.tags
    assert rounds([(plain, "us1"), (other_peer, "us1"), (peer, "us1"), (other_peer, "ie1")]) == [
        ({}, [2, 1, 3, 0], [])]


def test_shares_deal_scenario_items_alone_in_collection_order() -> None:
    nodeids = ["a.yaml::a[us1]", "tests/test_x.py::test_one", "a.yaml::a[ie1]",
               "b.yaml::b[us1]", "b.yaml::b[ie1]", "c.yaml::c[us1]"]
    assert deal(nodeids, 2) == {"a.yaml::a[us1]": 0, "a.yaml::a[ie1]": 1, "b.yaml::b[us1]": 0,
                                "b.yaml::b[ie1]": 1, "c.yaml::c[us1]": 0}
    assert set(deal(nodeids, 1).values()) == {0}


# Two scenarios, each holding its call a second: items of different files.
HELD = """
title: answered and held, {name}
pins: [test]
given:
  domain: {{ label: acme, acl: ["127.0.0.1"] }}
when: {{ invite: {{ to: "sip:1000@{{{{ host }}}}", hold: 1 }} }}
then: {{ responses: [100, 180, 200] }}
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_items_of_different_scenario_files_run_together(tmp_path: Path,
                                                        workers: list[str]) -> None:
    """A worker runs its whole share as one batch: the two files' items overlap in time. With
    two workers the shares are (first[us1], second[us1]) and (first[ie1], second[ie1]), so
    each pair ran on one worker; items of a file batched alone (as before the shares) would
    have run one file after the other there."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / ".siptwin-scenarios").write_text("")
    (suite / "first.yaml").write_text(HELD.format(name="first"))
    (suite / "second.yaml").write_text(HELD.format(name="second"))
    extra = ["-rA", *workers] + ([] if workers else ["-p", "no:xdist"])
    code, out, records = run_suite(tmp_path / "run", suite, regions="us1,ie1",
                                   scenarios_dir=suite, extra=extra)
    assert code == 0, out
    assert "4 passed" in out, out

    def window(record: dict) -> tuple[float, float]:
        times = [m["at"] for m in record["messages"]]
        return min(times), max(times)

    def app_of(record: dict) -> str:  # each worker has its own webhook receiver
        return {w["url"].split("/")[2] for w in record["webhooks"]}.pop()

    for region in ("us1", "ie1"):
        first, second = records[("first", region)], records[("second", region)]
        assert app_of(first) == app_of(second), (first["webhooks"], second["webhooks"])
        (a_start, a_end), (b_start, b_end) = window(first), window(second)
        assert a_start < b_end and b_start < a_end, (region, (a_start, a_end), (b_start, b_end))
    if workers:
        assert app_of(records[("first", "us1")]) != app_of(records[("first", "ie1")])
