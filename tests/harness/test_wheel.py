"""The built wheel, installed outside any checkout: the CLI works and pytest stays untouched.

One wheel and one fresh venv (pytest, no extras) for the module; the venv sees neither this
checkout nor the machine's site-packages, and every command runs from a throw-away folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("catalogue_addresses")  # tests/conftest.py

REPO = Path(__file__).resolve().parents[2]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".tox", "reports", ".siptwin", "build",
                                     "*.egg-info", "__pycache__", "*.so", ".*_cache")


# scripts/bootstrap keeps every wheel the project needs here: the tests install offline.
WHEELS = Path(os.environ.get("SIPTWIN_WHEELS")
              or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "siptwin" / "wheels")
OFFLINE = ["--disable-pip-version-check", "--no-index", "--find-links", str(WHEELS)]


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "PYTHONPATH", "VIRTUAL_ENV"))}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=COPY_IGNORE)
    if not WHEELS.is_dir():
        pytest.fail(f"no wheelhouse at {WHEELS}: run scripts/bootstrap")
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", *OFFLINE, "--no-deps",
                  "-w", str(base / "dist"), str(source)], cwd=base)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (base / "dist").glob("siptwin-*.whl")
    shutil.rmtree(source)  # nothing of a checkout is left to fall back on
    venv = base / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], cwd=base).returncode == 0
    installed = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *OFFLINE,
                      str(wheel), "pytest"], cwd=base)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


@pytest.fixture
def project(tmp_path) -> Path:
    """An unrelated project that happens to have a scenarios/ folder of YAML."""
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "config.yaml").write_text("not: [a, siptwin, scenario]\n")
    (tmp_path / "test_own.py").write_text(
        "import sys\n\n"
        "def test_own():\n"
        "    assert 'siptwin.harness.plugin' not in sys.modules\n"
        "    assert 'aiohttp' not in sys.modules and 'yaml' not in sys.modules\n")
    return tmp_path


def test_pytest_in_an_unrelated_project_is_untouched(venv, project) -> None:
    python = str(venv / "bin" / "python")
    plugins = _run([python, "-c", "import importlib.metadata as m; print("
                    "[e.value for e in m.entry_points(group='pytest11')])"], cwd=project)
    assert "siptwin.pytest_plugin" in plugins.stdout  # the plugin is there, and loaded
    run = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout, run.stdout
    helped = _run([python, "-m", "pytest", "--help"], cwd=project)
    assert "--siptwin-report" in helped.stdout
    options = {word.rstrip(",=") for line in helped.stdout.splitlines()
               for word in line.split() if word.startswith("--")}
    for unprefixed in ("--report", "--results-dir", "--pcap", "--backend", "--regions"):
        assert unprefixed not in options
    section = helped.stdout.split("siptwin conformance scenarios:")[1].split("\n\n")[0]
    ours = [w for w in section.split() if w.startswith("--")]
    assert ours and all(w.startswith("--siptwin-") for w in ours), ours


def test_the_cli_works_from_the_wheel(venv, project) -> None:
    siptwin = str(venv / "bin" / "siptwin")
    regions = _run([siptwin, "regions"], cwd=project)
    assert regions.returncode == 0 and "ie1" in regions.stdout and "sydney" in regions.stdout
    run = _run([siptwin, "run"], cwd=project)
    assert run.returncode == 2 and "pip install 'siptwin[suite]'" in run.stderr, run.stderr
    state = project / "state"
    up = _run([siptwin, "up", "--detach", "--state", str(state)], cwd=project)
    try:
        assert up.returncode == 0 and "siptwin ready" in up.stdout, up.stdout + up.stderr
        call_id = f"wheel-{time.time_ns()}@127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            port = sock.getsockname()[1]
            sock.sendto((
                "INVITE sip:1000@nosuch.sip.twilio.com SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-wheel\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=1\r\n"
                "To: <sip:1000@nosuch.sip.twilio.com>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:pbx@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n").encode(),
                ("127.0.1.1", 5060))
            assert sock.recv(65535).startswith(b"SIP/2.0 404")
        explained = _run([siptwin, "explain", "--last", "--state", str(state)], cwd=project)
        assert call_id in explained.stdout, explained.stdout + explained.stderr
    finally:
        down = _run([siptwin, "down", "--state", str(state)], cwd=project)
    assert down.returncode == 0, down.stderr


def test_siptwin_run_from_the_wheel_with_the_suite_extra(venv, project) -> None:
    python = str(venv / "bin" / "python")
    # The extra's packages, as the wheel's own metadata names them.
    extra = _run([python, "-c", "import importlib.metadata as m; print('\\n'.join("
                  "r.split(';')[0] for r in m.requires('siptwin') if 'extra == \"suite\"' in r))"],
                 cwd=project)
    assert "twilio" in extra.stdout
    installed = _run([python, "-m", "pip", "install", "-q", *OFFLINE, *extra.stdout.split()],
                     cwd=project)
    assert installed.returncode == 0, installed.stderr[-3000:]
    run = _run([str(venv / "bin" / "siptwin"), "run", "-n", "0", "--regions", "us1",
                "-k", "ip-listed or sipp-plain-acl"], cwd=project)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 passed" in run.stdout, run.stdout
    assert (project / "reports" / "conformance.html").is_file()
