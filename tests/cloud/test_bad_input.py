"""Malformed requests get a Twilio-shaped 4xx, never a 500, and never write anything.

Requests that the typed SDK methods cannot produce are sent with the SDK's generic
``Client.request``, which uses the same HTTP client, auth and headers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from twilio.rest import Client

from siptwin.cloud.model import PageRequest
from siptwin.cloud.params import ApiSettings, UnknownParameterPolicy

from .conftest import Twin, TwinFactory


@pytest.fixture
def twin(twin_factory: TwinFactory) -> Twin:
    """Strict mode (``unknown_parameters: reject``), whose refusals these tests pin as well;
    Twilio's own default, ignoring them, is tested in test_unknown_parameters.py."""
    return twin_factory(api_settings=ApiSettings(unknown_parameters=UnknownParameterPolicy.REJECT))


@pytest.fixture
def acl_collection(twin: Twin) -> str:
    return f"{twin.url}/2010-04-01/Accounts/{twin.master.sid}/SIP/IpAccessControlLists.json"


def _refusal(response: object, status: int, code: int) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = json.loads(response.text)  # type: ignore[attr-defined]
    assert set(body) == {"code", "message", "more_info", "status"}
    assert (body["code"], body["status"]) == (code, status)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert response.headers["X-Twilio-Error-Code"] == str(code)  # type: ignore[attr-defined]


@pytest.fixture
def unchanged(twin: Twin) -> Iterator[None]:
    """Whatever the test sends, the change feed (every committed write) must not move."""
    before = twin.store.version()
    yield
    assert twin.store.version() == before


CASES = {
    "unknown parameter": ({"FriendlyName": "office", "Colour": "blue"}, None, 400, 20001),
    "missing parameter": ({}, None, 400, 21235),
    "oversized value": ({"FriendlyName": "x" * 5000}, None, 400, 21235),
    "control characters": ({"FriendlyName": "a\x00b"}, None, 400, 21235),
    "percent-encoded non-UTF-8": ({"FriendlyName": b"\xff\xfe"}, None, 400, 20001),
    "raw non-UTF-8 body": (b"FriendlyName=\xff\xfe", None, 400, 20001),
    "duplicated parameter": ("FriendlyName=a&FriendlyName=b", None, 400, 20001),
    "JSON instead of a form": ('{"FriendlyName": "x"}', "application/json", 415, 20001),
    "multipart instead of a form": ("--x\r\n\r\n", "multipart/form-data; boundary=x", 415, 20001),
    "huge body": ("FriendlyName=" + "y" * 70_000, None, 413, 20001),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_malformed_create_is_refused_without_a_write(
    twin: Twin, client: Client, acl_collection: str, unchanged: None, case: str
) -> None:
    data, content_type, status, code = CASES[case]
    headers = {"Content-Type": content_type} if content_type else None
    response = client.request("POST", acl_collection, data=data, headers=headers)
    _refusal(response, status, code)
    assert twin.store.list_ip_acls(twin.master.sid, "us1", PageRequest(10)).records == []


@pytest.mark.parametrize(
    "query",
    [{"PageSize": "0"}, {"PageSize": "1001"}, {"PageSize": "ten"}, {"Page": "-1"},
     {"PageToken": "PAnot-a-token"}, {"Sort": "name"}],
)
def test_bad_paging_parameters_are_400(client: Client, acl_collection: str, query: dict[str, str]) -> None:
    _refusal(client.request("GET", acl_collection, params=query), 400, 20001)


@pytest.mark.parametrize(
    "path",
    [
        "SIP/Domains/SDnothex.json",
        "SIP/Domains/sd00000000000000000000000000000000.json",
        "SIP/IpAccessControlLists/CL00000000000000000000000000000000.json",
        "SIP/CredentialLists/CL0000/Credentials.json",
        "SIP/Nothing.json",
        "SIP.json",
    ],
)
def test_malformed_sids_and_unknown_paths_are_404(twin: Twin, client: Client, path: str) -> None:
    url = f"{twin.url}/2010-04-01/Accounts/{twin.master.sid}/{path}"
    _refusal(client.request("GET", url), 404, 20404)


def test_malformed_account_sid_in_path_is_404(twin: Twin, client: Client) -> None:
    _refusal(client.request("GET", f"{twin.url}/2010-04-01/Accounts/ACxyz/SIP/Domains.json"),
             404, 20404)


def test_wrong_method_is_405_20004(twin: Twin, client: Client, acl_collection: str) -> None:
    _refusal(client.request("PUT", acl_collection, data={"FriendlyName": "x"}), 405, 20004)
    _refusal(client.request("DELETE", acl_collection), 405, 20004)
    domain = client.sip.domains.create(domain_name="m.sip.twilio.com")
    mapping = f"{twin.url}{domain.uri.removesuffix('.json')}/CredentialListMappings/CL{'0' * 32}.json"
    _refusal(client.request("POST", mapping), 405, 20004)


def test_unknown_parameter_on_update_changes_nothing(twin: Twin, client: Client) -> None:
    domain = client.sip.domains.create(domain_name="keep.sip.twilio.com", friendly_name="keep")
    version = twin.store.version()
    url = f"{twin.url}{domain.uri}"
    response = client.request("POST", url, data={"FriendlyName": "changed", "VoiceUrll": "x"})
    _refusal(response, 400, 20001)
    response = client.request(
        "POST", url, data={"FriendlyName": "changed", "VoiceUrl": "https://ok.example/x",
                           "Secure": "maybe"})
    _refusal(response, 400, 21231)
    assert client.sip.domains(domain.sid).fetch().friendly_name == "keep"
    assert twin.store.version() == version
