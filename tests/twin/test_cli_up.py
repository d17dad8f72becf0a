"""``siptwin up`` as users start it: a real process on the catalogue's addresses (us1 only),
driven through its REST API with the twilio SDK and called by SIPp.

One test function on purpose: it binds 127.0.1.1:5060, so its steps must not run in parallel
with each other; other tests that bind the catalogue's addresses take turns with it
(``catalogue_addresses``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from siptwin.harness.provision import DomainPlan, provision, sdk_client
from tests.support import PASSWORD, REPO, free_port
from tests.support.cli import printed_value, recent_calls, run_siptwin

pytestmark = pytest.mark.usefixtures("catalogue_addresses")  # tests/conftest.py


def _sipp(calls: int, rate: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    domain = "acme.sip.us1.twilio.com"
    return subprocess.run(
        ["sipp", "127.0.1.1:5060", "-sf", str(REPO / "harness" / "sipp" / "uac_auth.xml"),
         "-t", "un", "-max_socket", "1000", "-s", "1000", "-au", "alice", "-ap", PASSWORD,
         "-key", "domain", domain, "-auth_uri", f"1000@{domain}", "-i", "127.0.0.1", "-p", "0",
         "-r", str(rate), "-m", str(calls), "-recv_timeout", "5s", "-timeout", "60s",
         "-nostdin"], capture_output=True, text=True, timeout=90, cwd=tmp_path)


def test_up_with_workers_answers_every_call_and_keeps_every_record(tmp_path) -> None:
    if shutil.which("sipp") is None:
        pytest.fail("SIPp is not installed: run scripts/bootstrap")
    state, api_port = tmp_path / "state", free_port()
    started = run_siptwin("up", "--detach", "--workers", "2", "--regions", "us1", "--state",
                           str(state), "--api-port", str(api_port), "--dns-port", str(free_port()))
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        out = started.stdout
        assert "siptwin ready" in out and "workers:   2 processes" in out

        # A second twin on the same addresses is refused, though it would be allowed to
        # share the ports the workers share.
        second = run_siptwin("up", "--workers", "2", "--regions", "us1", "--state",
                              str(tmp_path / "other"), "--api-port", str(free_port()),
                              "--dns-port", str(free_port()), timeout=30)
        assert second.returncode == 1 and "in use" in second.stderr, second.stderr

        sid = printed_value(out, "TWILIO_ACCOUNT_SID")
        token = printed_value(out, "TWILIO_AUTH_TOKEN")
        api = f"http://127.0.0.1:{api_port}"
        provision(sdk_client(api, sid, token),
                  DomainPlan("acme", voice_url="twiml:<Response><Pause length=\"5\"/></Response>",
                             credentials=[("alice", PASSWORD)]))
        run = _sipp(40, 20, tmp_path)  # a socket (source port) per call: both processes get some
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

        deadline = time.monotonic() + 5
        while True:  # a worker sends its records every 0.2 s: a call's end may come a batch
            # after its answer (seen under load: 40 answered, some still in progress)
            answered = [c for c in recent_calls(api, sid, token) if c["sid"]]
            ended = all(c["status"] == "completed" for c in answered)
            if (len(answered) == 40 and ended) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(answered) == 40
        assert {c["status"] for c in answered} == {"completed"}
        assert {c["process"] for c in answered} == {0, 1}
    finally:
        stopped = run_siptwin("down", "--state", str(state))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
