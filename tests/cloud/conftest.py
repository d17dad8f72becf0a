"""A running twin per test: real SQLite file in tmp_path, real socket on 127.0.0.1, and
official ``twilio`` SDK clients whose every 2xx response is checked against the OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from siptwin.cloud.api import make_app
from siptwin.cloud.api_region import region_from_host
from siptwin.cloud.model import Account, Limits
from siptwin.cloud.params import ApiSettings
from siptwin.cloud.scope import DEFAULT_REGION
from siptwin.cloud.server import BackgroundServer
from siptwin.cloud.store import Store

from .openapi_check import check_response


class CheckingHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, plus schema checks and an optional Host header."""

    def __init__(self, host_header: str | None = None) -> None:
        super().__init__()
        self.host_header = host_header
        self.responses: list[tuple[str, str, Response]] = []

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if self.host_header:
            headers["Host"] = self.host_header
        response = super().request(
            method, url, params=params, data=data, headers=headers, auth=auth,
            timeout=timeout, allow_redirects=allow_redirects,
        )
        self.responses.append((method, url, response))
        check_response(method, urlsplit(url).path, response.status_code, response.text)
        return response

    @property
    def last_body(self) -> str:
        return self.responses[-1][2].text


@dataclass
class Twin:
    store: Store
    server: BackgroundServer
    master: Account
    clients: list[Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(
        self,
        account: Account | None = None,
        region: str | None = None,
        host_header: str | None = None,
        token: str | None = None,
    ) -> Client:
        """An SDK client for ``account`` (master by default) aimed at the twin.

        ``region`` uses the twin's path prefix; ``host_header`` sends a Twilio API host name.
        """
        who = account or self.master
        addressed = region or region_from_host(host_header) or DEFAULT_REGION
        # Each processing region has its own token; a region that processes no SIP has none.
        token = token or self.store.auth_token(who.sid, addressed) or who.auth_token
        client = Client(who.sid, token, http_client=CheckingHttpClient(host_header))
        suffix = f"/{region}" if region else ""
        client.api.base_url = self.url + suffix
        client.routes.base_url = self.url + suffix
        client.voice.base_url = self.url + suffix  # BYOC trunks (voice.twilio.com/v1)
        self.clients.append(client)
        return client

    def subaccount(self, friendly_name: str = "sub") -> Account:
        created = self.client().api.v2010.accounts.create(friendly_name=friendly_name)
        account = self.store.account(created.sid)
        assert account is not None
        return account


TwinFactory = Callable[..., Twin]


@pytest.fixture
def twin_factory(tmp_path: Any) -> Iterator[TwinFactory]:
    started: list[Twin] = []

    def start(limits: Limits | None = None, route_propagation_seconds: int = 0,
              api_settings: ApiSettings | None = None) -> Twin:
        store = Store.open(tmp_path / f"state{len(started)}", limits=limits,
                           route_propagation_seconds=route_propagation_seconds)
        master = store.ensure_master_account()
        server = BackgroundServer(lambda: make_app(store, api_settings))
        server.start()
        twin = Twin(store, server, master)
        started.append(twin)
        return twin

    yield start
    for twin in started:
        twin.server.stop()
        twin.store.close()


@pytest.fixture
def twin(twin_factory: TwinFactory) -> Twin:
    return twin_factory()


@pytest.fixture
def client(twin: Twin) -> Client:
    return twin.client()


def twilio_error(action: Callable[[], object]) -> TwilioRestException:
    """Run ``action`` expecting the twin to refuse it; returns the SDK's exception."""
    with pytest.raises(TwilioRestException) as caught:
        action()
    return caught.value


def expect_error(action: Callable[[], object], status: int, code: int) -> TwilioRestException:
    error = twilio_error(action)
    assert (error.status, error.code) == (status, code), error.msg
    return error


def expect_list_error(client: Client, action: Callable[[], object], status: int, code: int) -> None:
    """The SDK's list calls raise a bare TwilioException; check the response behind it."""
    with pytest.raises(TwilioException):
        action()
    response = client.http_client.responses[-1][2]  # type: ignore[attr-defined]
    body = json.loads(response.text)
    assert (response.status_code, body["code"], body["status"]) == (status, code, status)
