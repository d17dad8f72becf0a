"""Fixtures every test directory may use: the embedded twin, its harness, the customer app.

Helpers (not fixtures) live in tests/support/; a directory's own conftest.py holds only what
that directory needs. tests/README.md says where a new test goes.
"""

from __future__ import annotations

import os

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
