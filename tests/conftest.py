"""Fixtures every test directory may use: the embedded twin, its harness, the customer app.

Helpers (not fixtures) live in tests/support/; a directory's own conftest.py holds only what
that directory needs. tests/README.md says where a new test goes.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import settings

from siptwin.cloud.server import start_site
from tests.support.twin import Harness, embedded_twin
from tests.support.webhook_app import WebhookApp

# A CI gate gives the same verdict on the same code: there (CI is set by .ci/run and by GitHub
# Actions) the property tests draw a fixed sequence of examples; elsewhere they explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
async def twin(tmp_path):
    instance = embedded_twin(tmp_path / "state")
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
def harness(twin) -> Harness:
    return Harness(twin)


@pytest.fixture
async def app(twin):
    application = WebhookApp(twin.auth_token, region_tokens=dict(twin.auth_tokens))
    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", application.handle)
    runner, application.port = await start_site(server, "127.0.0.1", 0)
    yield application
    await runner.cleanup()


@pytest.fixture
def catalogue_addresses():
    """Held by a test that starts ``siptwin up`` on the catalogue's own addresses
    (127.0.1.1-8:5060/5061, as users run it): xdist workers share one network namespace, so
    such tests take turns (test_wheel binds all eight while test_cli_reach held ie1 once)."""
    lock = Path(tempfile.gettempdir()) / f"siptwin-tests-catalogue-{os.getuid()}.lock"
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield
