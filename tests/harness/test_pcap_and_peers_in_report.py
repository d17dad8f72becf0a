"""--siptwin-pcap: one capture per scenario item on the node addresses, readable by tshark and linked
from the report; SIPp and device runs appear in the report too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO


def test_each_item_gets_a_pcap_that_tshark_reads_and_the_report_links(tmp_path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None or os.geteuid() != 0:
        pytest.fail("--siptwin-pcap needs tshark/dumpcap and root (CI has both): run scripts/bootstrap")
    report, pcaps, results = tmp_path / "report.html", tmp_path / "pcaps", tmp_path / "results"
    # A network namespace of its own: the capture takes everything on the worker's /24, and an
    # xdist worker of the enclosing run may be running scenarios on that same /24 meanwhile
    # (its SIPp's BYE once landed in this run's capture).
    argv = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
            sys.executable, "-m", "pytest", str(REPO / "scenarios/interop/sipp-plain-acl.yaml"),
            str(REPO / "scenarios/acl/ip-not-listed.yaml"), "--siptwin-regions", "us1,ie1",
            "--siptwin-results-dir", str(results), "--siptwin-pcap", str(pcaps), "--siptwin-report", str(report),
            "-p", "no:cacheprovider", "-q", "--rootdir", str(REPO)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert len(records) == 4 and all(r.get("pcap") for r in records)
    html = report.read_text()
    for record in records:
        pcap = Path(record["pcap"])
        assert pcap.exists(), record["pcap"]
        assert f'href="pcaps/{pcap.name}"' in html
        out = subprocess.run([tshark, "-r", str(pcap), "-Y", "sip", "-T", "fields",
                              "-e", "ip.src", "-e", "ip.dst", "-e", "sip.Method", "-e", "sip.Status-Code"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = [line.split("\t") for line in out.stdout.splitlines()]
        methods = [line[2] for line in lines if len(line) > 2 and line[2]]
        if record["scenario"] == "interop/sipp-plain-acl":
            assert methods[:1] == ["INVITE"] and "ACK" in methods and "BYE" in methods, lines
            assert any(line[3] == "200" for line in lines if len(line) > 3), lines
            assert record["peers"][0]["sipp"]["exit"] == 0
        else:  # the dropped INVITE is on the wire, and nothing answers it
            assert methods == ["INVITE"] and not any(len(x) > 3 and x[3] for x in lines), lines
    assert "real peers (1 runs)" in html
