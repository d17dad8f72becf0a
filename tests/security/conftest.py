"""The twin of tests/regions, and the results directory findings are written to."""

from __future__ import annotations

import pytest

from ..regions.conftest import harness, twin  # noqa: F401 - fixtures

PASSWORD = "Harbour7Lights"


@pytest.fixture
def results_dir(pytestconfig) -> str:
    return pytestconfig.getoption("--results-dir")


@pytest.fixture
async def limited_twin(tmp_path):
    """Start a twin with some resource limits changed: ``await limited_twin(name=value)``."""
    from dataclasses import replace

    from siptwin.harness.twin import EmbeddedTwin, TwinConfig
    from siptwin.limits import Limits
    from siptwin.regions.catalogue import Catalogue, default_catalogue_dir
    from siptwin.settings import build_fidelity

    from ..regions.conftest import Harness, worker_network

    started = []

    async def start(**limits):
        catalogue = Catalogue.load(default_catalogue_dir()).relocated(worker_network(), port_offset=0)
        catalogue = Catalogue([replace(r, udp_port=0, tcp_port=0, tls_port=0) for r in catalogue])
        config = TwinConfig(state_dir=tmp_path / "state", api_port=0, dns_port=0,
                            fidelity=build_fidelity("seed"), catalogue=catalogue,
                            limits=Limits(**limits))
        instance = EmbeddedTwin(config)
        await instance.start()
        started.append(instance)
        return Harness(instance)

    yield start
    for instance in started:
        await instance.stop()
