"""Spec §2.3: "Unknown parameters are ignored (warning 20001)". The ``unknown_parameters``
setting keeps a strict mode (400/20001) for catching typos; Twilio's behaviour is the default."""

from __future__ import annotations

from twilio.rest import Client

from siptwin.cloud.params import ApiSettings, UnknownParameterPolicy

from .conftest import Twin, TwinFactory


def _domains(twin: Twin) -> str:
    return f"{twin.url}/2010-04-01/Accounts/{twin.master.sid}/SIP/Domains.json"


def test_spec_2_3_unknown_parameters_are_ignored_on_create(twin: Twin, client: Client) -> None:
    response = client.request("POST", _domains(twin), data={
        "DomainName": "typo.sip.twilio.com", "FriendlyName": "typo", "Colour": "blue"})
    assert response.status_code == 201, response.text
    created = client.sip.domains.list()
    assert [d.domain_name for d in created] == ["typo.sip.twilio.com"]
    assert created[0].friendly_name == "typo"


def test_spec_2_3_unknown_parameters_are_ignored_on_update(twin: Twin, client: Client) -> None:
    domain = client.sip.domains.create(domain_name="keep.sip.twilio.com", friendly_name="keep")
    response = client.request("POST", f"{twin.url}{domain.uri}",
                              data={"FriendlyName": "changed", "VoiceUrll": "https://x.example/"})
    assert response.status_code == 200, response.text
    fetched = client.sip.domains(domain.sid).fetch()
    assert (fetched.friendly_name, fetched.voice_url) == ("changed", None)


def test_spec_2_3_unknown_query_parameters_are_ignored_on_list(twin: Twin, client: Client) -> None:
    response = client.request("GET", _domains(twin), params={"Colour": "blue"})
    assert response.status_code == 200, response.text


def test_strict_mode_refuses_unknown_parameters(twin_factory: TwinFactory) -> None:
    strict = twin_factory(api_settings=ApiSettings(UnknownParameterPolicy.REJECT))
    client = strict.client()
    response = client.request("POST", _domains(strict), data={
        "DomainName": "typo.sip.twilio.com", "Colour": "blue"})
    assert response.status_code == 400 and '"code":20001' in response.text.replace(" ", "")
    assert client.sip.domains.list() == []
