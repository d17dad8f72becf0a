"""Kamailio 5.6 as a customer's SBC: forwards calls to the twin and answers its 407."""

from __future__ import annotations

import asyncio

import pytest

from siptwin.harness.pbx import KamailioSbc, Target, received
from siptwin.harness.provision import DomainPlan
from tests.support import PASSWORD
from tests.support.peers import need_peers as _need

pytestmark = pytest.mark.peer


async def _sbc_call(harness, tmp_path, region: str, host: str, password: str = PASSWORD):
    address, port = harness.node_port(region)
    sbc = KamailioSbc(Target(address, port, host, "alice", password), tmp_path / "sbc")
    await asyncio.to_thread(sbc.start)
    try:
        run = await asyncio.to_thread(sbc.call, "1000")
    finally:
        await asyncio.to_thread(sbc.stop)
    return sbc, run


async def test_kamailio_config_parses(tmp_path) -> None:
    _need("kamailio")
    sbc = KamailioSbc(Target("127.0.1.1", 5060, "acme.sip.ie1.twilio.com", "alice", PASSWORD),
                      tmp_path)
    out = await asyncio.to_thread(sbc.check)
    assert "config file ok" in out


async def test_sbc_call_reaches_the_region_by_domain_host_and_answers_the_407(harness, tmp_path) -> None:
    _need("kamailio", "sipp")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    sbc, run = await _sbc_call(harness, tmp_path, "ie1", "acme.sip.ie1.twilio.com")
    assert run.exit == 0, run.output[-2000:] + sbc.log()[-3000:]
    calls = [c for c in harness.twin.calls.all() if c.sid]
    assert len(calls) == 1, [c.status for c in harness.twin.calls.all()]
    call = calls[0]
    seen = received(call)
    assert seen["host"] == "acme.sip.ie1.twilio.com" and seen["region"] == "ie1"
    assert call.domain_name == "acme.sip.twilio.com" and call.username == "alice"
    assert seen["invites"] == 2 and seen["digest_uri_matches"] is True, seen
    assert {"PCMU", "PCMA"} <= set(seen["codecs"]), seen
    assert seen["headers"]["X-Sbc-Site"] == "lisbon-1", seen
    assert seen["headers"]["X-Pbx-Extension"] == "201", seen
    assert seen["headers"]["User-to-User"].startswith("56a390f3d2b7310023a2"), seen
    assert "ACK" in seen["methods"] and "BYE" in seen["methods"], seen
    assert call.status == "completed" and not call.alerts, (call.status, call.alerts)


async def test_sbc_with_a_wrong_password_gets_the_403_back(harness, tmp_path) -> None:
    _need("kamailio", "sipp")
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    sbc, run = await _sbc_call(harness, tmp_path, "us2", "acme.sip.us2.twilio.com",
                               password="Wr0ngPassword9")
    assert run.exit == 1, run.output[-2000:]  # the caller saw the failure
    assert "403" in run.output, run.output[-2000:]
    calls = harness.twin.calls.all()
    assert calls and not any(c.sid for c in calls)
    assert calls[-1].final_status == 403 and calls[-1].region == "us2"


def test_ci_example_scenario_validates_the_shipped_sbc_config(tmp_path) -> None:
    """harness/ci/scenarios (what the GitHub Actions example runs) passes as shipped."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    _need("kamailio", "sipp")
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(repo / "harness/ci/scenarios"), "--siptwin-regions",
         "us1,ie1", "--siptwin-results-dir", str(tmp_path / "results"), "-p", "no:cacheprovider", "-q",
         "--rootdir", str(repo)], cwd=repo, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
