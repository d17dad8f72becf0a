from __future__ import annotations

import pytest

from tests.support.peers import PEER_PASSWORD

from .minimal_uas import MinimalUas


@pytest.fixture
async def uas():
    server = MinimalUas("127.0.0.1", {"alice": PEER_PASSWORD})
    await server.start()
    yield server
    await server.close()
