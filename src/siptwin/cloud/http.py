"""The REST API's HTTP plumbing: the request a handler gets, routes, and Twilio-shaped responses.

Handlers (:mod:`.api`, :mod:`.api_calls`) build on this module; :mod:`.api` dispatches to
them. Keeping the plumbing here lets every handler module import it without importing the
dispatcher, which imports every handler module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..model.sids import SidPrefix, is_sid, new_sid
from .errors import TwilioError, not_found
from .model import Account
from .params import ApiSettings, only_known
from .store import Store

STORE_KEY = web.AppKey("siptwin.cloud.store", Store)
SETTINGS_KEY = web.AppKey("siptwin.cloud.settings", ApiSettings)


@dataclass
class ApiRequest:
    """Everything a handler needs about one authenticated, routed request."""

    request: web.Request
    store: Store
    settings: ApiSettings
    caller: Account
    region: str
    path: str
    parts: dict[str, str]
    account: Account  # the account named in the path, or the caller when none is named
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)

    def params(self, *allowed: str) -> dict[str, str]:
        return only_known(self.form, allowed, self.settings)

    def query_params(self, *allowed: str) -> dict[str, str]:
        return only_known(self.query, allowed, self.settings)

    def sid(self, name: str, prefix: SidPrefix) -> str:
        """A SID from the path; a malformed one cannot name anything, hence 404."""
        value = self.parts[name]
        if not is_sid(value, prefix):
            raise not_found(self.request.path)
        return value

    def missing(self) -> TwilioError:
        return not_found(self.request.path)


Handler = Callable[[ApiRequest], Awaitable[web.Response]]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    account_credentials_only: bool = False  # refused to an API key (the Accounts and Keys)


def compile_route(template: str) -> re.Pattern[str]:
    regex = re.escape(template)
    regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+?)", regex)
    return re.compile(f"^{regex}$")


# --- responses -----------------------------------------------------------------------------


def new_request_id() -> str:
    return new_sid(SidPrefix.REQUEST)


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
    )


def error_response(error: TwilioError) -> web.Response:
    response = json_response(error.body(), error.http_status)
    response.headers["X-Twilio-Error-Code"] = str(error.code)
    if error.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def no_content() -> web.Response:
    return web.Response(status=204)
