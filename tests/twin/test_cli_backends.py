"""``siptwin up --backend X`` starts the launchers the suite uses, and ``siptwin down`` stops them.

Each backend gets a region no other test binds (its catalogue address, port 5060), so the
parametrized cases may run in parallel with each other and with test_cli_up.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

import pytest

from siptwin.ua.client import SipClient
from tests.support import free_port
from tests.support.cli import run_siptwin

pytestmark = pytest.mark.usefixtures("catalogue_addresses")  # tests/conftest.py

REGION = {"embedded": ("de1", "127.0.1.4"), "process": ("sg1", "127.0.1.5")}


def _options_status(address: str) -> int | None:
    async def ask() -> int | None:
        async with SipClient("127.0.0.1") as client:
            got = await client.request("OPTIONS", address, 5060, f"sip:{address}")
            return got[-1].status if got else None

    return asyncio.run(ask())


def _sip_port_free(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 5060))
        except OSError:
            return False
    return True


def _api_answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)  # noqa: S310 (loopback)
    except urllib.error.HTTPError:
        return True  # it answered, with an HTTP error
    except OSError:
        return False
    return True


@pytest.mark.parametrize("backend", sorted(REGION))
def test_up_and_down_with_each_backend(tmp_path, backend) -> None:
    region, address = REGION[backend]
    state, api_port = tmp_path / "state", free_port()
    started = run_siptwin("up", "--detach", "--backend", backend, "--regions", region, "--state",
                           str(state), "--api-port", str(api_port), "--dns-port", str(free_port()))
    assert started.returncode == 0, started.stdout + started.stderr
    stopped = None
    try:
        assert "siptwin ready" in started.stdout
        assert f"{region} " in started.stdout and address in started.stdout
        assert _api_answers(api_port)
        assert _options_status(address) == 200  # the region node answers SIP
    finally:
        stopped = run_siptwin("down", "--state", str(state))
    assert stopped.returncode == 0 and "siptwin stopped" in stopped.stdout, stopped.stdout
    # Everything it started is gone: the region's SIP port and the REST API are free again.
    assert _sip_port_free(address)
    assert not _api_answers(api_port)
