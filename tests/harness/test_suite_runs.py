"""The conformance suite end to end: it can fail for the right reason, and the report renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.suite import run_suite


def test_a_wrong_twin_setting_makes_the_right_scenarios_fail(tmp_path) -> None:
    settings = tmp_path / "wrong.yaml"
    settings.write_text("acl_miss: reject\nbad_credentials_status: 488\n")
    code, out, records = run_suite(
        tmp_path, "scenarios/acl/ip-not-listed.yaml", "scenarios/credentials/wrong-password.yaml",
        "scenarios/acl/ip-listed.yaml", extra=["--siptwin-settings", str(settings)])
    assert code == 1, out
    for region in ("us1", "ie1"):
        acl = records[("acl/ip-not-listed", region)]
        assert acl["outcome"] == "failed" and acl["failure_kind"] == "unexpected-answer"
        creds = records[("credentials/wrong-password", region)]
        assert creds["outcome"] == "failed" and creds["failure_kind"] == "unexpected-response"
        assert creds["failures"][0]["actual"] == [100, 407, 100, 488]
        # A scenario the wrong setting does not touch still passes.
        assert records[("acl/ip-listed", region)]["outcome"] == "passed"
    assert "unexpected-answer: expected silence but the twin answered" in out


def test_report_opens_in_a_browser_with_the_matrix(tmp_path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap")
    report = tmp_path / "conformance.html"
    code, out, records = run_suite(tmp_path, "scenarios/acl", "scenarios/credentials",
                                   extra=["--siptwin-report", str(report)])
    assert code == 0, out
    assert report.exists() and records
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'id="matrix"' in dom
    # The profile of the run and where to read what a pass here may not mean on Twilio.
    assert 'id="fidelity"' in dom and "observed (2 items)" in dom
    assert 'fidelity.md"' in dom
    for scenario, region in records:
        assert f'href="#{scenario.replace("/", "-")}-{region}"' in dom
    screenshot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1280,1600", f"--screenshot={screenshot}",
                    report.as_uri()], capture_output=True, timeout=120)
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    reports = REPO / "reports"
    reports.mkdir(exist_ok=True)
    shutil.copy(screenshot, reports / "conformance-screenshot.png")


# A representative subset per backend (CI runs them all; the docker one builds its image).
BACKEND_SUBSETS = {
    "process": ["scenarios/acl", "scenarios/credentials", "scenarios/twiml",
                "scenarios/webhook/parameters.yaml"],
    "netns": ["scenarios/acl", "scenarios/credentials", "scenarios/webhook",
              "scenarios/twiml/reject-busy.yaml"],
    "docker": ["scenarios/acl", "scenarios/credentials/good-password.yaml",
               "scenarios/webhook/parameters.yaml", "scenarios/twiml/reject-busy.yaml",
               "scenarios/faults/stopped-region.yaml"],
}


@pytest.mark.parametrize("backend", list(BACKEND_SUBSETS))
def test_a_representative_subset_passes_on_each_backend(tmp_path, backend) -> None:
    if backend == "docker":  # our own dockerd, an image built without a registry
        for tool in ("dockerd", "debootstrap"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is not installed: run scripts/bootstrap")
    code, out, records = run_suite(tmp_path, *BACKEND_SUBSETS[backend],
                                   extra=["--siptwin-backend", backend])
    assert code == 0, out[-3000:]
    assert records and all(r["outcome"] == "passed" for r in records.values())


def test_a_docker_twin_that_cannot_start_leaves_no_engine_behind(tmp_path) -> None:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed: run scripts/bootstrap")
    # A cached root file system whose python3 cannot run: the image build fails after our
    # dockerd has started, offline and in seconds.
    rootfs = tmp_path / "cache" / "rootfs" / "usr" / "bin"
    rootfs.mkdir(parents=True)
    (rootfs / "python3").write_text("not a program")
    (rootfs / "python3").chmod(0o755)
    scratch = tmp_path / "tmp"  # the twin's state (and its dockerd's roots) land in here
    scratch.mkdir()
    code, out, _ = run_suite(tmp_path, "scenarios/acl/ip-listed.yaml",
                             extra=["--siptwin-backend", "docker"],
                             env_extra={"SIPTWIN_DOCKER_CACHE": str(tmp_path / "cache"),
                                        "TMPDIR": str(scratch)})
    leftovers = subprocess.run(["pgrep", "-f", str(scratch)], capture_output=True, text=True)
    subprocess.run(["pkill", "-f", str(scratch)], check=False)  # never leave them running
    mounts = Path("/proc/self/mountinfo").read_text()
    for line in mounts.splitlines():  # nor a data-root mount: umount whatever is left
        if str(scratch) in line:
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
    assert leftovers.stdout.strip() == "", "a dockerd or containerd outlived the failed start"
    assert str(scratch) not in mounts, "dockerd's data-root mount outlived the failed start"
    assert code == 1, out
    assert "the twin could not start" in out  # the second item did not try again
