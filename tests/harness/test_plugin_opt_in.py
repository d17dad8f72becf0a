"""The pytest plugin turns YAML into scenario items only below a folder that opted in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "acl" / "ip-listed.yaml"


def _collect(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "--siptwin-regions", "us1,ie1", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def _project(tmp_path: Path) -> Path:
    # A project of its own (rootdir here) whose scenarios/ folder is not a siptwin suite.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "scenarios" / "acl").mkdir(parents=True)
    shutil.copy(SCENARIO, tmp_path / "scenarios" / "acl" / "ip-listed.yaml")
    return tmp_path


def test_yaml_outside_an_opted_in_folder_is_not_collected(tmp_path) -> None:
    proc = _collect(_project(tmp_path), "scenarios")
    assert proc.returncode == 5, proc.stdout  # no tests collected
    assert "ip-listed" not in proc.stdout


def test_a_marker_file_opts_a_folder_in(tmp_path) -> None:
    project = _project(tmp_path)
    (project / "scenarios" / ".siptwin-scenarios").write_text("")
    proc = _collect(project, "scenarios")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "acl/ip-listed[us1]" in proc.stdout and "acl/ip-listed[ie1]" in proc.stdout


def test_the_option_and_the_ini_setting_opt_a_folder_in(tmp_path) -> None:
    project = _project(tmp_path)
    proc = _collect(project, "scenarios", "--siptwin-scenarios", "scenarios")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "acl/ip-listed[us1]" in proc.stdout
    (project / "pytest.ini").write_text("[pytest]\nsiptwin_scenarios = scenarios\n")
    proc = _collect(project, "scenarios")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "acl/ip-listed[ie1]" in proc.stdout
