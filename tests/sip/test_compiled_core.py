"""The SIP core compiled with mypyc (scripts/compile-core) passes the same core tests.

The compiled build is optional - the sources are what every other test runs - so this test
builds a copy of the source tree and runs tests/sip against it in a separate interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO


def test_the_compiled_core_passes_the_core_tests(tmp_path) -> None:
    try:
        import mypyc  # noqa: F401
    except ImportError:
        pytest.fail("mypy (mypyc) is not installed: run scripts/bootstrap")
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns(
        "__pycache__", "*.so", "build", "*.egg-info", ".mypy_cache"))
    # A checkout's layout: mypyc, run in src/, finds the project's mypy settings above it
    # (those name modules outside the core, which mypy warns of when it checks only the core)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    # Started as from a shell: by an interpreter outside any virtual environment (the base of
    # this one, which has no mypy), the script builds for the checkout's .venv, which has it.
    command = [sys._base_executable, str(REPO / "scripts" / "compile-core"), "--src", str(src)]
    if os.path.realpath(sys.prefix) != os.path.realpath(REPO / ".venv"):  # run from another one
        command += ["--python", sys.executable]
    built = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    built_for = Path(built.stdout.strip().rpartition(" for ")[2])
    assert os.path.realpath(built_for.parent) == os.path.realpath(Path(sys.executable).parent), \
        built.stdout
    compiled = sorted(p.name.split(".")[0] for p in (src / "siptwin" / "sip").glob("*.so"))
    sources = sorted(p.stem for p in (src / "siptwin" / "sip").glob("*.py") if p.stem != "__init__")
    assert "message" in compiled and "transaction" in compiled and compiled == sources

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(src)
    where = subprocess.run([sys.executable, "-c", "import siptwin.sip.digest as d; print(d.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(src)) and where.stdout.strip().endswith(".so")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "tests" / "sip"), "-q", "-p", "no:cacheprovider",
         "--ignore", str(Path(__file__)), "--rootdir", str(REPO)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
