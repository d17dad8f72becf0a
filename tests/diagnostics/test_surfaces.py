"""Where findings show up: REST notifications, siptwin's own endpoint, `siptwin explain`,
scenario expectations and result records - and that healthy calls raise no false alarms."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from siptwin import cli
from siptwin.diagnostics import CallFacts, diagnose
from siptwin.harness.provision import DomainPlan
from siptwin.model.calls import Call, TraceEntry
from siptwin.ua.client import Auth
from tests.support import PASSWORD, REPO

HOST = "acme.sip.us1.twilio.com"


async def test_rest_notifications_carry_findings_and_the_siptwin_endpoint_explains_rejects(
        harness) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.0/8"]))
    accepted = await harness.call("us1", f"sip:1000@{HOST}", headers=[("Route-Id", "7")])
    client = harness.client()
    call = harness.twin.calls.get(accepted.call_id)
    notes = await asyncio.to_thread(client.calls(call.sid).notifications.list)
    texts = [n.message_text for n in notes]
    assert any(t.startswith("x-header-dropped: ") and "Fix: " in t for t in texts), texts
    assert all(n.log in ("0", "1") for n in notes)
    rejected = await harness.call("us1", "sip:1000@acmee.sip.twilio.com")
    base = f"{harness.twin.api_url}/siptwin/v1/Accounts/{harness.twin.account_sid}/Calls"
    for ref in (rejected.call_id, "last"):
        response = await asyncio.to_thread(client.request, "GET", f"{base}/{ref}/Findings.json")
        assert response.status_code == 200, response.text
        body = json.loads(response.text)
        assert body["call_id"] == rejected.call_id and body["sid"] is None
        assert [f["id"] for f in body["findings"]] == ["unknown-domain"]
        assert body["findings"][0]["fix"].startswith("Did you mean acme.sip.twilio.com")
    missing = await asyncio.to_thread(client.request, "GET", f"{base}/nope@x/Findings.json")
    assert missing.status_code == 404


async def test_siptwin_explain_last_prints_the_explanation(harness, capsys) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    await harness.call("us1", f"sip:1000@{HOST}", auth=Auth("alice", "Wr0ngPassword9"))
    state = harness.twin.config.state_dir
    cli._write_api_file(state, harness.twin)  # what 'siptwin up' leaves in its state directory
    (state / "siptwin.pid").write_text(str(os.getpid()))
    code = await asyncio.to_thread(cli.main, ["explain", "--last", "--state", str(state)])
    out = capsys.readouterr().out
    assert code == 1  # an error finding: the call failed
    assert "ERROR   wrong-password  (Twilio 32202)" in out
    assert "Fix: Set the same password on both sides" in out
    assert "| Proxy-Authorization: Digest username=\"alice\"" in out
    code = await asyncio.to_thread(cli.main, ["explain", "--last", "--json", "--state", str(state)])
    assert json.loads(capsys.readouterr().out)["findings"][0]["id"] == "wrong-password"


def test_record_route_ignored_from_a_recorded_trace() -> None:
    """The twin sends no Record-Route; a recorded trace that had one shows the rule."""
    invite = (f"INVITE sip:1000@{HOST} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1"
              "\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:1000@acme.sip.us1.twilio.com>\r\n"
              "Call-ID: rr@x\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5090>\r\n"
              "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    ok = ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\n"
          "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:1000@acme.sip.us1.twilio.com>;tag=t\r\n"
          "Call-ID: rr@x\r\nCSeq: 1 INVITE\r\nContact: <sip:127.0.0.2:5060>\r\n"
          "Record-Route: <sip:127.0.0.2:5060;lr;r2=on>\r\nContent-Length: 0\r\n\r\n")
    ack = ("ACK sip:127.0.0.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK2\r\n"
           "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:1000@acme.sip.us1.twilio.com>;tag=t\r\n"
           "Call-ID: rr@x\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    call = Call("rr@x", "us1", "127.0.0.1", 5090, "udp", 0.0, sid="CA" + "0" * 32,
                request_uri=f"sip:1000@{HOST}", status="completed", final_status=200)
    for direction, text in (("in", invite), ("out", ok), ("in", ack)):
        call.trace.append(TraceEntry(0.0, direction, "udp", "127.0.0.1:5090", "127.0.0.2:5060",
                                     text.encode()))
    found = {f.id: f for f in diagnose(CallFacts(call))}
    assert set(found) == {"record-route-ignored"}
    assert "Record-Route: <sip:127.0.0.2:5060;lr;r2=on>" in found["record-route-ignored"].evidence


def _suite(tmp_path: Path, paths: list[str], *extra: str) -> tuple[int, str, list[dict]]:
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "pytest", *paths, "--siptwin-regions", "us1",
            "--siptwin-results-dir", str(results), "-p", "no:cacheprovider", "-q", "--rootdir",
            str(REPO), *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    records = [json.loads(p.read_text()) for p in results.glob("*.json")]
    return proc.returncode, proc.stdout + proc.stderr, records


def test_healthy_suite_raises_no_false_alarms(tmp_path) -> None:
    """Every answered call of the scenario suite is free of error findings, and every call the
    twin refused is explained by at least one error finding."""
    folders = sorted(str(p) for p in (REPO / "scenarios").iterdir()
                     if p.is_dir() and p.name != "interop")
    code, out, records = _suite(tmp_path, folders, "-n", "2")
    assert records, out[-3000:]
    answered = refused = 0
    alarms, unexplained = [], []
    for record in records:
        findings_by_call: dict[str, list[dict]] = {}
        for finding in record["findings"]:
            findings_by_call.setdefault(finding["call_id"], []).append(finding)
        for call in record["calls"]:
            errors = [f["id"] for f in findings_by_call.get(call["call_id"], [])
                      if f["severity"] == "error"]
            where = f"{record['scenario']}: {call['call_id']}"
            if call["final_status"] == 200 and call["status"] in ("completed", "in-progress",
                                                                  "registered"):
                answered += 1
                if errors:
                    alarms.append(f"{where}: {errors}")
            elif call["status"] in ("rejected", "dropped"):
                refused += 1
                if not errors:
                    unexplained.append(f"{where}: {call['final_status']} {call['alerts']}")
    assert not alarms, alarms
    assert not unexplained, unexplained
    assert answered > 20 and refused > 20, (answered, refused)


def test_scenarios_can_require_and_forbid_findings(tmp_path) -> None:
    scenarios = tmp_path / "scenarios" / "diag"
    scenarios.mkdir(parents=True)
    (scenarios / "wrong.yaml").write_text(
        "title: expects the wrong finding\npins: [test]\nregions: [us1]\n"
        "given:\n  domain: { label: acme, credentials: [[alice, Harbour7Lights]] }\n"
        "when:\n  invite: { auth: { username: alice, password: Nope1234 } }\n"
        "then:\n  findings: [realm-mismatch]\n  no_findings: [error]\n")
    code, out, records = _suite(tmp_path, [str(scenarios)], "--siptwin-scenarios",
                                str(scenarios.parent))
    assert code == 1, out[-3000:]
    (record,) = records
    kinds = [f["kind"] for f in record["failures"]]
    assert kinds == ["finding-missing", "unexpected-finding"], record["failures"]
    assert record["failures"][0]["actual"] == ["wrong-password"]
    assert record["findings"][0]["id"] == "wrong-password"
