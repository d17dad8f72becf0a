"""One settings file sets the edges, the voice layer and the REST API alike (issue 19): what
``siptwin up --settings FILE`` loads, and what ``siptwin settings`` lists."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from siptwin.cloud.params import UnknownParameterPolicy
from siptwin.regions.catalogue import Catalogue
from siptwin.settings import SETTINGS, load_fidelity
from siptwin.twin.config import TwinConfig
from siptwin.twin.embedded import EmbeddedTwin
from tests.support import REPO
from tests.support.twin import Harness, ephemeral, worker_network


@pytest.fixture
async def strict_twin(tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("profile: seed\nsettings:\n  unknown_parameters: reject\n"
                        "  route_propagation_seconds: 120\n  to_parameter: to-header\n"
                        "  emergency_caller_check: format\n")
    catalogue = Catalogue.load(REPO / "regions").relocated(worker_network(), port_offset=0)
    config = TwinConfig(state_dir=tmp_path / "state", api_port=0, dns_port=0,
                        fidelity=load_fidelity(settings), tls=False,
                        catalogue=Catalogue([ephemeral(r) for r in catalogue]))
    twin = EmbeddedTwin(config)
    await twin.start()
    yield twin
    await twin.stop()


@pytest.mark.asyncio
async def test_a_settings_file_reaches_the_rest_api_and_the_routes(strict_twin) -> None:
    client = Harness(strict_twin).client()
    assert strict_twin.store.route_propagation_seconds == 120
    assert strict_twin.api_settings.unknown_parameters is UnknownParameterPolicy.REJECT
    url = f"{strict_twin.api_url}/2010-04-01/Accounts/{strict_twin.account_sid}/SIP/Domains.json"
    form = {"DomainName": "a.sip.twilio.com", "Colour": "x"}
    response = await asyncio.to_thread(client.request, "POST", url, data=form)
    assert response.status_code == 400 and "20001" in response.text
    # A scenario switching the setting changes the running API at once.
    strict_twin.set_fidelity(strict_twin.fidelity.with_overrides({"unknown_parameters": "ignore",
                                                                  "route_propagation_seconds": 0}))
    response = await asyncio.to_thread(client.request, "POST", url, data=form)
    assert response.status_code == 201, response.text
    assert strict_twin.store.route_propagation_seconds == 0


@pytest.mark.asyncio
async def test_settings_reach_the_checks_of_what_a_domain_names(strict_twin) -> None:
    client = Harness(strict_twin).client()
    base = f"{strict_twin.api_url}/2010-04-01/Accounts/{strict_twin.account_sid}"
    unknown_number = "PN" + "0" * 32
    response = await asyncio.to_thread(client.request, "POST", f"{base}/SIP/Domains.json", data={
        "DomainName": "e.sip.twilio.com", "EmergencyCallerSid": unknown_number})
    assert response.status_code == 201, response.text  # emergency_caller_check: format
    strict_twin.set_fidelity(strict_twin.fidelity.with_overrides({
        "emergency_caller_check": "exists", "referenced_delete": "clear"}))
    response = await asyncio.to_thread(client.request, "POST", f"{base}/SIP/Domains.json", data={
        "DomainName": "f.sip.twilio.com", "EmergencyCallerSid": unknown_number})
    assert response.status_code == 400 and "21231" in response.text
    number = await asyncio.to_thread(client.request, "POST", f"{base}/IncomingPhoneNumbers.json",
                                     data={"PhoneNumber": "+14155550111"})
    pn = json.loads(number.text)["sid"]
    domain = await asyncio.to_thread(client.request, "POST", f"{base}/SIP/Domains.json", data={
        "DomainName": "g.sip.twilio.com", "EmergencyCallerSid": pn})
    assert domain.status_code == 201, domain.text
    gone = await asyncio.to_thread(client.request, "DELETE",
                                   f"{base}/IncomingPhoneNumbers/{pn}.json")
    assert gone.status_code == 204  # referenced_delete: clear
    # the harness's SDK client reaches the BYOC trunks too (voice.twilio.com in the SDK)
    trunk = await asyncio.to_thread(client.voice.v1.byoc_trunks.create, friendly_name="carrier")
    domain = await asyncio.to_thread(client.sip.domains.create, domain_name="h.sip.twilio.com",
                                     byoc_trunk_sid=trunk.sid)
    assert domain.byoc_trunk_sid == trunk.sid


def test_a_propagation_delay_above_five_minutes_is_refused(tmp_path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("route_propagation_seconds: 301\n")
    with pytest.raises(ValueError, match="at most 300"):
        load_fidelity(settings)


def test_siptwin_settings_lists_every_setting_by_area() -> None:
    out = subprocess.run([sys.executable, "-m", "siptwin", "settings"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    names = {line for line in out.splitlines() if line and not line[0].isspace()}
    assert {s.name for s in SETTINGS} <= names
    assert "# REST API" in out and "# SIP edges" in out
    assert out.index("# REST API") < out.index("unknown_parameters")
    for name in ("x_header_total_cap", "no_voice_url", "to_parameter", "allow_methods",
                 "authorization_name_match", "loopback_contact", "account_cps_limit",
                 "registration_rate_limit", "unknown_parameters", "route_propagation_seconds"):
        assert name in names



def test_docs_fidelity_names_every_setting() -> None:
    """docs/fidelity.md is the one table of where the twin may differ from Twilio."""
    text = (REPO / "docs" / "fidelity.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert missing == []
