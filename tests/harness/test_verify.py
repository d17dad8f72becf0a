"""``siptwin verify``: a real twin (``siptwin up --detach``), real SIPp calls placed outside
the suite, then the recorded calls judged against an expectation file.

One test function drives the twin on purpose: it binds 127.0.1.3:5060 (ie1).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest

from siptwin.diagnostics.client import credentials
from siptwin.harness.provision import DomainPlan, provision, sdk_client
from siptwin.harness.verify import VerifyError, fetch_records, load_expectations
from tests.support import REPO, free_port
from tests.support.cli import run_siptwin

pytestmark = pytest.mark.usefixtures("catalogue_addresses")  # tests/conftest.py

EXPECT = """\
calls:
  - name: calls to acme carry our site header
    match: { domain: acme }
    count: { min: 1 }
    expect:
      status: completed
      transport: udp
      host: acme.sip.ie1.twilio.com
      headers: { X-Site: ci, User-to-User: "56a3*" }
      codecs: [PCMU]
      findings: none
  - name: nobody calls the unknown domain
    match: { domain: "nobody*" }
    count: 0
"""


def _call(header: str, tmp_path: Path) -> None:
    domain = "acme.sip.ie1.twilio.com"
    run = subprocess.run(
        ["sipp", "127.0.1.3:5060", "-sf", str(REPO / "harness" / "sipp" / "uac_headers.xml"),
         "-s", "1000", "-key", "domain", domain, "-key", "xhdr_name", header,
         "-key", "xhdr_value", "ci", "-key", "uui", "56a390f3d2b7310023a2;encoding=hex",
         "-i", "127.0.0.1", "-p", "0", "-m", "1", "-recv_timeout", "5s", "-timeout", "30s",
         "-nostdin"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


def _failures(junit: Path) -> list[ElementTree.Element]:
    return ElementTree.parse(junit).getroot().findall(".//testcase/failure")


def test_verify_passes_for_good_calls_and_fails_for_a_call_without_the_header(tmp_path) -> None:
    if shutil.which("sipp") is None:
        pytest.fail("SIPp is not installed: run scripts/bootstrap")
    state, api_port = tmp_path / "state", free_port()
    expect = tmp_path / "expect.yaml"
    expect.write_text(EXPECT)
    started = run_siptwin("up", "--detach", "--regions", "ie1", "--state", str(state),
                           "--api-port", str(api_port), "--dns-port", str(free_port()))
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        sid, token = credentials(state) or ("", "")
        provision(sdk_client(f"http://127.0.0.1:{api_port}", sid, token),
                  DomainPlan("acme", voice_url="twiml:<Response><Pause length=\"1\"/></Response>",
                             acl=["127.0.0.1/32"]))
        assert run_siptwin("mark", "good", "--state", str(state)).stdout.strip() == "good"
        _call("X-Site", tmp_path)
        report, junit = tmp_path / "verify.html", tmp_path / "good.xml"
        good = run_siptwin("verify", str(expect), "--since", "good", "--state", str(state),
                            "--junit", str(junit), "--report", str(report))
        assert good.returncode == 0, good.stdout + good.stderr
        assert "2 of 2 expectations met" in good.stdout
        assert _failures(junit) == []
        assert len(ElementTree.parse(junit).getroot().findall(".//testcase")) == 2
        html = report.read_text()
        assert "SIP ladder diagram" in html and "INVITE sip:1000@acme.sip.ie1.twilio.com" in html

        run_siptwin("mark", "bad", "--state", str(state))
        _call("X-Other", tmp_path)  # the PBX lost our header
        junit = tmp_path / "bad.xml"
        bad = run_siptwin("verify", str(expect), "--since", "bad", "--state", str(state),
                           "--junit", str(junit))
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "header-mismatch" in bad.stdout and "X-Site" in bad.stdout
        (failure,) = _failures(junit)
        assert failure.get("type") == "header-mismatch" and "X-Site" in failure.get("message", "")

        # Since the twin started: both calls, one of them wrong, so it fails too.
        everything = run_siptwin("verify", str(expect), "--state", str(state))
        assert everything.returncode == 1 and "(2 call(s))" in everything.stdout

        # An expectation no call meets fails on its count.
        expect.write_text(EXPECT.replace("domain: acme }", "domain: acme, username: bob }"))
        missing = run_siptwin("verify", str(expect), "--since", "good", "--state", str(state))
        assert missing.returncode == 1 and "call-count-mismatch" in missing.stdout

        unknown = run_siptwin("verify", str(expect), "--since", "never", "--state", str(state))
        assert unknown.returncode == 2 and "no mark 'never'" in unknown.stderr

        # The endpoint behind it refuses a Since that is no number, with Twilio's error shape.
        with pytest.raises(VerifyError, match="answered 400"):
            fetch_records(f"http://127.0.0.1:{api_port}", sid, token, "yesterday")  # type: ignore[arg-type]
        with pytest.raises(VerifyError, match="answered 401"):
            fetch_records(f"http://127.0.0.1:{api_port}", sid, "wrong-token", 0.0)
    finally:
        stopped = run_siptwin("down", "--state", str(state))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    gone = run_siptwin("verify", str(expect), "--state", str(state))
    assert gone.returncode == 2 and "no running twin" in gone.stderr


@pytest.mark.parametrize(("text", "where"), [
    ("calls:\n  - match: { user: alice }\n", ":2: calls/0/match: unknown key(s) ('user' was unexpected)"),
    ("calls:\n  - match: {}\n    expect:\n      transport: sctp\n", ":4: calls/0/expect/transport:"),
    ("calls:\n  - match: {}\n    count: { min: 3, max: 1 }\n", ":3: calls/0/count: max 1 is below min 3"),
    ("calls: []\n", ":1: calls: [] should be non-empty"),
    ("calls:\n  - match: {\n", ": not valid YAML"),
])
def test_an_expectation_file_with_a_mistake_names_the_file_and_line(tmp_path, text, where) -> None:
    path = tmp_path / "expect.yaml"
    path.write_text(text)
    with pytest.raises(VerifyError) as err:
        load_expectations(path)
    assert str(err.value).startswith(str(path)) and where in str(err.value), str(err.value)
