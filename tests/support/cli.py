"""``siptwin`` run as its users run it: a subprocess of this interpreter, from the repository,
without the pytest environment variables (a twin started by a test must not think it is one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from base64 import b64encode

from . import REPO


def run_siptwin(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siptwin", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")})


def printed_value(output: str, key: str) -> str:
    """The value of a ``KEY=value`` line ``siptwin up`` printed (credentials, API URL)."""
    return next(line.split("=", 1)[1] for line in output.splitlines() if line.startswith(key + "="))


def recent_calls(api: str, sid: str, token: str) -> list[dict]:
    """The twin API's recent call records of an account."""
    request = urllib.request.Request(f"{api}/siptwin/v1/Accounts/{sid}/Calls.json")
    request.add_header("Authorization", "Basic " + b64encode(f"{sid}:{token}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        return json.loads(response.read())["calls"]
