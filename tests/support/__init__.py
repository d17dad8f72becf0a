"""Helpers siptwin's own tests share (fixtures built on them live in tests/conftest.py).

- here: ``REPO``, the test account ``PASSWORD``, ``free_port()`` and ``closed_port()``;
- :mod:`.twin`: the embedded twin per test (a loopback /24 per xdist worker) and ``Harness``;
- :mod:`.webhook_app`: a customer application that checks every signature with the SDK;
- :mod:`.peers`: finding and running real peers (SIPp, sipsak, baresip);
- :mod:`.baresip`: baresip's configuration and its silent microphone;
- :mod:`.suite`: the conformance suite run in a pytest subprocess, its results read back;
- :mod:`.cli`: ``siptwin`` run as a subprocess, the values ``siptwin up`` prints, the API's call records;
- :mod:`.rawsip`: a raw UAC for messages the native client will not send;
- :mod:`.layers`: the package import graph and the one-way rule (tests/test_layers.py).
"""

from __future__ import annotations

import socket
from pathlib import Path

from siptwin.harness.sipp import free_sip_port

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Harbour7Lights"  # the credential the tests provision for alice


def free_port() -> int:
    """A loopback port free for UDP and TCP, and for TCP at the next one (baresip listens on
    both at its SIP port and on TLS one above), outside the ephemeral range."""
    return free_sip_port("127.0.0.1")


def closed_port() -> int:
    """A loopback TCP port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
