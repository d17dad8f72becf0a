"""The Twilio-compatible REST API: ``make_app(store)`` returns an aiohttp application.

One dispatcher handles every request so the order of checks is visible in one place:
region selection -> authentication -> route match (404) -> method (405) -> path account
(404 / 401) -> request decoding (4xx) -> handler.  Handlers translate form parameters with
:mod:`siptwin.cloud.rules`, call the :class:`~siptwin.cloud.store.Store`, and render with
:mod:`siptwin.cloud.representations`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from ..model.calls import CallRegistry
from ..model.sids import SidPrefix, is_sid
from . import representations as shapes
from . import rules
from .api_calls import CALL_ROUTES, CALLS_KEY, DIAGNOSE_KEY, Diagnose
from .api_region import select_region
from .errors import (
    ErrorCode,
    TwilioError,
    authentication_failed,
    method_not_allowed,
    not_found,
)
from .hashing import secret_digest
from .http import (
    SETTINGS_KEY,
    STORE_KEY,
    ApiRequest,
    Handler,
    Route,
    compile_route,
    error_response,
    json_response,
    new_request_id,
    no_content,
)
from .model import Account, AccountStatus, ListKind, MappingPurpose, Page
from .params import (
    PAGING_PARAMETERS,
    ApiSettings,
    encode_page_token,
    paging,
    read_form,
    read_query,
)
from .scope import PROCESSING_REGIONS
from .store import MissingResource, Store

log = logging.getLogger(__name__)

HOME_REGION = "us1"  # every twin account is homed in us1, like a default Twilio account


# --- authentication ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    account: Account
    api_key_sid: str | None = None  # None: the account's own auth token


def authenticate(request: web.Request, store: Store, region: str) -> Caller:
    """HTTP Basic with ``AccountSid:AuthToken`` or ``ApiKeySid:Secret`` (spec 2.2), each
    checked against the credentials of the region the request addresses: a token or key of
    another region is refused like a wrong one (spec 2.1)."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise authentication_failed()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise authentication_failed() from None
    username, _, password = decoded.partition(":")
    if is_sid(username, SidPrefix.API_KEY):
        key = store.api_key_by_sid(region, username)
        expected = key.secret_sha256 if key is not None else ""
        offered = secret_digest(password)
        account = store.account(key.account_sid) if key is not None else None
        api_key_sid: str | None = username
    elif is_sid(username, SidPrefix.ACCOUNT):
        account = store.account(username)
        expected = (store.auth_token(username, region) if account is not None else None) or ""
        offered = password
        api_key_sid = None
    else:
        raise authentication_failed()
    if (
        account is None
        or not expected
        or account.status != AccountStatus.ACTIVE
        or not hmac.compare_digest(expected.encode(), offered.encode())
    ):
        raise authentication_failed()
    return Caller(account, api_key_sid)


def ensure_account_credentials(caller: Caller) -> None:
    """A standard API key reaches everything but the Accounts and Keys resources, which
    take the account's own auth token (spec 2.2)."""
    if caller.api_key_sid is not None:
        raise authentication_failed()


def resolve_path_account(call_path: str, caller: Account, store: Store, sid: str) -> Account:
    """A parent reaches its sub-accounts; a sub-account never reaches its parent (spec 2.2)."""
    if not is_sid(sid, SidPrefix.ACCOUNT):
        raise not_found(call_path)
    account = store.account(sid)
    if account is None:
        raise not_found(call_path)
    if account.sid != caller.sid and account.owner_account_sid != caller.sid:
        raise authentication_failed()
    return account


# --- paging helper ------------------------------------------------------------------------------


def list_response(
    call: ApiRequest,
    array_key: str,
    fetch: Callable[[Any], Page[Any]],
    render: Callable[[Any], dict[str, Any]],
    extra_query: tuple[str, ...] = (),
) -> web.Response:
    query = call.query_params(*PAGING_PARAMETERS, *extra_query)
    page_spec = paging(query)
    page = fetch(page_spec.request)
    token = encode_page_token(page.records[-1].seq) if page.records else None
    body = shapes.list_envelope(
        call.path,
        array_key,
        page,
        render,
        page_spec.page_size,
        page_spec.page_number,
        token,
        [(name, query[name]) for name in extra_query if name in query],
    )
    return json_response(body)


# --- accounts ---------------------------------------------------------------------------------


def _account_json(call: ApiRequest, account: Account) -> dict[str, Any]:
    """An account as the addressed region shows it: with that region's auth token."""
    token = call.store.auth_token(account.sid, call.region) or account.auth_token
    return shapes.account_json(replace(account, auth_token=token))


async def list_accounts(call: ApiRequest) -> web.Response:
    filters = call.query_params(*PAGING_PARAMETERS, "FriendlyName", "Status")
    status = rules.account_status(filters["Status"]) if "Status" in filters else None
    return list_response(
        call,
        "accounts",
        lambda request: call.store.list_accounts(
            call.caller, request, filters.get("FriendlyName"), status
        ),
        lambda account: _account_json(call, account),
        ("FriendlyName", "Status"),
    )


async def create_account(call: ApiRequest) -> web.Response:
    params = call.params("FriendlyName")
    name = rules.account_friendly_name(params["FriendlyName"]) if params.get("FriendlyName") else None
    return json_response(_account_json(call, call.store.create_subaccount(call.caller, name)), 201)


async def fetch_account(call: ApiRequest) -> web.Response:
    return json_response(_account_json(call, call.account))


async def update_account(call: ApiRequest) -> web.Response:
    params = call.params("FriendlyName", "Status")
    name = rules.account_friendly_name(params["FriendlyName"]) if "FriendlyName" in params else None
    status = rules.account_status(params["Status"]) if "Status" in params else None
    if status is not None:
        rules.ensure_status_may_change(call.account.is_subaccount, call.account.status, status)
    return json_response(_account_json(call, call.store.update_account(call.account.sid, name, status)))


# --- API keys (regional, like every credential: spec 2.1, 6.3) --------------------------------


def _key_name(params: dict[str, str]) -> str | None:
    return rules.api_key_friendly_name(params["FriendlyName"]) if "FriendlyName" in params else None


async def list_api_keys(call: ApiRequest) -> web.Response:
    return list_response(
        call, "keys",
        lambda request: call.store.list_api_keys(call.account.sid, call.region, request),
        shapes.api_key_json,
    )


async def create_api_key(call: ApiRequest) -> web.Response:
    name = _key_name(call.params("FriendlyName"))
    key, secret = call.store.create_api_key(call.account.sid, call.region, name)
    return json_response(shapes.new_api_key_json(key, secret), 201)


async def fetch_api_key(call: ApiRequest) -> web.Response:
    key = call.store.api_key(call.account.sid, call.region, call.sid("Sid", SidPrefix.API_KEY))
    if key is None:
        raise call.missing()
    return json_response(shapes.api_key_json(key))


async def update_api_key(call: ApiRequest) -> web.Response:
    name = _key_name(call.params("FriendlyName"))
    key = call.store.update_api_key(
        call.account.sid, call.region, call.sid("Sid", SidPrefix.API_KEY), name)
    return json_response(shapes.api_key_json(key))


async def delete_api_key(call: ApiRequest) -> web.Response:
    if not call.store.delete_api_key(
            call.account.sid, call.region, call.sid("Sid", SidPrefix.API_KEY)):
        raise call.missing()
    return no_content()


# --- SIP domains ---------------------------------------------------------------------------------

DOMAIN_PARAMETERS = (
    "DomainName",
    "FriendlyName",
    "VoiceUrl",
    "VoiceMethod",
    "VoiceFallbackUrl",
    "VoiceFallbackMethod",
    "VoiceStatusCallbackUrl",
    "VoiceStatusCallbackMethod",
    "SipRegistration",
    "EmergencyCallingEnabled",
    "Secure",
    "ByocTrunkSid",
    "EmergencyCallerSid",
)


def domain_settings(params: dict[str, str], account: Account) -> dict[str, object]:
    """Form parameters -> domain columns, each checked by its rule (21232 / 21231)."""
    code = ErrorCode.DOMAIN_VALIDATION
    settings: dict[str, object] = {}
    for name, value in params.items():
        match name:
            case "DomainName":
                settings["domain_name"] = rules.domain_name(value, account.sid)
            case "FriendlyName":
                settings["friendly_name"] = rules.domain_friendly_name(value) or None
            case "VoiceUrl" | "VoiceFallbackUrl" | "VoiceStatusCallbackUrl":
                settings[_snake(name)] = rules.url(value, name, code)
            case "VoiceMethod" | "VoiceFallbackMethod" | "VoiceStatusCallbackMethod":
                settings[_snake(name)] = rules.http_method(value, name, code)
            case "SipRegistration" | "EmergencyCallingEnabled" | "Secure":
                settings[_snake(name)] = rules.boolean(value, name, code)
            case "ByocTrunkSid":
                settings["byoc_trunk_sid"] = rules.byoc_trunk_sid(value)
            case "EmergencyCallerSid":
                settings["emergency_caller_sid"] = rules.optional_sid_param(
                    value, name, SidPrefix.PHONE_NUMBER, code
                )
    return settings


def _snake(pascal: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", pascal).lower()


async def list_domains(call: ApiRequest) -> web.Response:
    return list_response(
        call,
        "domains",
        lambda request: call.store.list_domains(call.account.sid, call.region, request),
        shapes.domain_json,
    )


async def create_domain(call: ApiRequest) -> web.Response:
    params = call.params(*DOMAIN_PARAMETERS)
    rules.required(params.get("DomainName"), "DomainName", ErrorCode.INVALID_DOMAIN)
    settings = domain_settings(params, call.account)
    domain = call.store.create_domain(call.account, call.region, settings,
                                      _check_emergency_caller(call))
    return json_response(shapes.domain_json(domain), 201)


async def fetch_domain(call: ApiRequest) -> web.Response:
    domain = call.store.domain(call.account.sid, call.region, call.sid("Sid", SidPrefix.DOMAIN))
    if domain is None:
        raise call.missing()
    return json_response(shapes.domain_json(domain))


async def update_domain(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.DOMAIN)
    params = call.params(*DOMAIN_PARAMETERS)
    if "DomainName" in params:
        rules.required(params["DomainName"], "DomainName", ErrorCode.INVALID_DOMAIN)
    settings = domain_settings(params, call.account)
    return json_response(
        shapes.domain_json(call.store.update_domain(call.account, call.region, sid, settings,
                                                    _check_emergency_caller(call)))
    )


def _check_emergency_caller(call: ApiRequest) -> bool:
    return call.settings.emergency_caller_check == "exists"


def _clear_references(call: ApiRequest) -> bool:
    return call.settings.referenced_delete == "clear"


async def delete_domain(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.DOMAIN)
    if not call.store.delete_domain(call.account.sid, call.region, sid):
        raise call.missing()
    return no_content()


# --- what a domain names: BYOC trunks (Voice v1) and incoming phone numbers ----------------

BYOC_TRUNK_PARAMETERS = (
    "FriendlyName", "VoiceUrl", "VoiceMethod", "VoiceFallbackUrl", "VoiceFallbackMethod",
    "StatusCallbackUrl", "StatusCallbackMethod", "CnamLookupEnabled", "ConnectionPolicySid",
    "FromDomainSid",
)
PHONE_NUMBER_PARAMETERS = (
    "FriendlyName", "VoiceUrl", "VoiceMethod", "VoiceFallbackUrl", "VoiceFallbackMethod",
    "StatusCallback", "StatusCallbackMethod", "EmergencyStatus", "EmergencyAddressSid",
)


def voice_settings(params: dict[str, str]) -> dict[str, object]:
    """The parameters BYOC trunks and phone numbers share with each other (20001 when bad)."""
    code = ErrorCode.INVALID_PARAMETER
    settings: dict[str, object] = {}
    for name, value in params.items():
        match name:
            case "VoiceUrl" | "VoiceFallbackUrl" | "StatusCallbackUrl" | "StatusCallback":
                settings[_snake(name)] = rules.url(value, name, code)
            case "VoiceMethod" | "VoiceFallbackMethod" | "StatusCallbackMethod":
                settings[_snake(name)] = rules.http_method(value, name, code)
            case "CnamLookupEnabled":
                settings["cnam_lookup_enabled"] = rules.boolean(value, name, code)
            case "ConnectionPolicySid":
                settings["connection_policy_sid"] = rules.optional_sid_param(
                    value, name, SidPrefix.CONNECTION_POLICY, code)
            case "FromDomainSid":
                settings["from_domain_sid"] = rules.optional_sid_param(
                    value, name, SidPrefix.DOMAIN, code)
            case "EmergencyStatus":
                settings["emergency_status"] = rules.emergency_status(value)
            case "EmergencyAddressSid":
                settings["emergency_address_sid"] = rules.optional_sid_param(
                    value, name, SidPrefix.ADDRESS, code)
    return settings


def _trunk_settings(call: ApiRequest) -> dict[str, object]:
    params = call.params(*BYOC_TRUNK_PARAMETERS)
    settings = voice_settings(params)
    if "FriendlyName" in params:
        settings["friendly_name"] = rules.byoc_trunk_friendly_name(params["FriendlyName"])
    return settings


def _request_base(call: ApiRequest) -> str:
    """Where this request went, without its path: the twin's own address (with any region
    prefix), so the v1 paging URLs lead back here."""
    prefix = call.request.path[: len(call.request.path) - len(call.path)]
    return f"{call.request.scheme}://{call.request.host}{prefix}"


async def list_byoc_trunks(call: ApiRequest) -> web.Response:
    page_spec = paging(call.query_params(*PAGING_PARAMETERS))
    page = call.store.list_byoc_trunks(call.account.sid, call.region, page_spec.request)
    token = encode_page_token(page.records[-1].seq) if page.records else None
    return json_response(shapes.meta_envelope(
        _request_base(call) + call.path, "byoc_trunks", page, shapes.byoc_trunk_json,
        page_spec.page_size, page_spec.page_number, token))


async def create_byoc_trunk(call: ApiRequest) -> web.Response:
    trunk = call.store.create_byoc_trunk(call.account.sid, call.region, _trunk_settings(call))
    return json_response(shapes.byoc_trunk_json(trunk), 201)


async def fetch_byoc_trunk(call: ApiRequest) -> web.Response:
    trunk = call.store.byoc_trunk(call.account.sid, call.region, call.sid("Sid", SidPrefix.BYOC_TRUNK))
    if trunk is None:
        raise call.missing()
    return json_response(shapes.byoc_trunk_json(trunk))


async def update_byoc_trunk(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.BYOC_TRUNK)
    trunk = call.store.update_byoc_trunk(call.account.sid, call.region, sid, _trunk_settings(call))
    return json_response(shapes.byoc_trunk_json(trunk))


async def delete_byoc_trunk(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.BYOC_TRUNK)
    if not call.store.delete_byoc_trunk(call.account.sid, call.region, sid, _clear_references(call)):
        raise call.missing()
    return no_content()


def _number_settings(call: ApiRequest) -> dict[str, object]:
    params = call.params("PhoneNumber", *PHONE_NUMBER_PARAMETERS)
    settings = voice_settings(params)
    if "FriendlyName" in params:
        settings["friendly_name"] = rules.phone_number_friendly_name(params["FriendlyName"])
    if "PhoneNumber" in params:
        settings["phone_number"] = rules.phone_number(params["PhoneNumber"])
    return settings


NUMBER_FILTERS = ("Beta", "FriendlyName", "PhoneNumber", "Origin")


async def list_phone_numbers(call: ApiRequest) -> web.Response:
    """The list's documented filters. Every number of the twin is a Twilio number that is not
    new to the platform (``origin: twilio``, ``beta: false``), so ``Beta`` only has to be a
    boolean and ``Origin=hosted`` finds nothing."""
    query = call.query_params(*PAGING_PARAMETERS, *NUMBER_FILTERS)
    if "Beta" in query:
        rules.boolean(query["Beta"], "Beta", ErrorCode.INVALID_PARAMETER)
    origin = rules.phone_number_origin(query.get("Origin"))
    return list_response(
        call, "incoming_phone_numbers",
        lambda request: call.store.list_phone_numbers(
            call.account.sid, call.region, request, query.get("PhoneNumber"),
            query.get("FriendlyName"), nothing=origin == "hosted"),
        shapes.phone_number_json,
        NUMBER_FILTERS,
    )


async def create_phone_number(call: ApiRequest) -> web.Response:
    settings = _number_settings(call)
    if "phone_number" not in settings:  # AreaCode searches an inventory the twin has not
        rules.phone_number(None)
    number = call.store.create_phone_number(call.account.sid, call.region, settings)
    return json_response(shapes.phone_number_json(number), 201)


async def fetch_phone_number(call: ApiRequest) -> web.Response:
    number = call.store.phone_number(call.account.sid, call.region,
                                     call.sid("Sid", SidPrefix.PHONE_NUMBER))
    if number is None:
        raise call.missing()
    return json_response(shapes.phone_number_json(number))


async def update_phone_number(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.PHONE_NUMBER)
    settings = _number_settings(call)
    settings.pop("phone_number", None)  # a number is what it is; Twilio does not update it
    number = call.store.update_phone_number(call.account.sid, call.region, sid, settings)
    return json_response(shapes.phone_number_json(number))


async def delete_phone_number(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.PHONE_NUMBER)
    if not call.store.delete_phone_number(call.account.sid, call.region, sid,
                                          _clear_references(call)):
        raise call.missing()
    return no_content()


# --- domain mappings (legacy, Auth/Calls, Auth/Registrations) ---------------------------------


@dataclass(frozen=True)
class MappingFamily:
    """One of the five mapping paths; legacy and Auth/Calls share purpose CALLS (one store)."""

    purpose: MappingPurpose
    list_kind: ListKind
    array_key: str
    render: Callable[[Any, str], dict[str, Any]]

    @property
    def parameter(self) -> str:
        if self.list_kind is ListKind.CREDENTIAL_LIST:
            return "CredentialListSid"
        return "IpAccessControlListSid"

    @property
    def prefix(self) -> SidPrefix:
        if self.list_kind is ListKind.CREDENTIAL_LIST:
            return SidPrefix.CREDENTIAL_LIST
        return SidPrefix.IP_ACCESS_CONTROL_LIST


def _collection_path(call: ApiRequest) -> str:
    return call.path if "Sid" not in call.parts else call.path.rsplit("/", 1)[0] + ".json"


def mapping_handlers(family: MappingFamily) -> tuple[dict[str, Handler], dict[str, Handler]]:
    def render(mapping: Any, call: ApiRequest) -> dict[str, Any]:
        return family.render(mapping, _collection_path(call))

    def domain_sid(call: ApiRequest) -> str:
        sid = call.sid("DomainSid", SidPrefix.DOMAIN)
        if call.store.domain(call.account.sid, call.region, sid) is None:
            raise call.missing()
        return sid

    async def list_mappings(call: ApiRequest) -> web.Response:
        sid = domain_sid(call)
        return list_response(
            call,
            family.array_key,
            lambda request: call.store.list_mappings(
                call.account.sid, call.region, sid, family.purpose, family.list_kind, request
            ),
            lambda mapping: render(mapping, call),
        )

    async def create_mapping(call: ApiRequest) -> web.Response:
        sid = domain_sid(call)
        params = call.params(family.parameter)
        list_sid = rules.sid_param(
            rules.required(params.get(family.parameter), family.parameter,
                           ErrorCode.DOMAIN_VALIDATION),
            family.parameter,
            family.prefix,
            ErrorCode.DOMAIN_VALIDATION,
        )
        mapping = call.store.create_mapping(
            call.account.sid, call.region, sid, family.purpose, family.list_kind, list_sid,
            call.request.path,
        )
        return json_response(render(mapping, call), 201)

    async def fetch_mapping(call: ApiRequest) -> web.Response:
        sid = domain_sid(call)
        mapping = call.store.mapping(
            call.account.sid, call.region, sid, family.purpose, family.list_kind,
            call.sid("Sid", family.prefix),
        )
        if mapping is None:
            raise call.missing()
        return json_response(render(mapping, call))

    async def delete_mapping(call: ApiRequest) -> web.Response:
        sid = domain_sid(call)
        if not call.store.delete_mapping(
            call.account.sid, call.region, sid, family.purpose, family.list_kind,
            call.sid("Sid", family.prefix),
        ):
            raise call.missing()
        return no_content()

    return (
        {"GET": list_mappings, "POST": create_mapping},
        {"GET": fetch_mapping, "DELETE": delete_mapping},
    )


# --- IP access control lists and addresses ---------------------------------------------------


async def list_ip_acls(call: ApiRequest) -> web.Response:
    return list_response(
        call,
        "ip_access_control_lists",
        lambda request: call.store.list_ip_acls(call.account.sid, call.region, request),
        shapes.ip_acl_json,
    )


async def create_ip_acl(call: ApiRequest) -> web.Response:
    name = rules.ip_acl_friendly_name(call.params("FriendlyName").get("FriendlyName"))
    acl = call.store.create_ip_acl(call.account.sid, call.region, name)
    return json_response(shapes.ip_acl_json(acl), 201)


async def fetch_ip_acl(call: ApiRequest) -> web.Response:
    acl = call.store.ip_acl(call.account.sid, call.region, call.sid("Sid", SidPrefix.IP_ACCESS_CONTROL_LIST))
    if acl is None:
        raise call.missing()
    return json_response(shapes.ip_acl_json(acl))


async def update_ip_acl(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.IP_ACCESS_CONTROL_LIST)
    name = rules.ip_acl_friendly_name(call.params("FriendlyName").get("FriendlyName"))
    return json_response(
        shapes.ip_acl_json(call.store.update_ip_acl(call.account.sid, call.region, sid, name))
    )


async def delete_ip_acl(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.IP_ACCESS_CONTROL_LIST)
    if not call.store.delete_ip_acl(call.account.sid, call.region, sid):
        raise call.missing()
    return no_content()


def _existing_acl_sid(call: ApiRequest) -> str:
    sid = call.sid("IpAccessControlListSid", SidPrefix.IP_ACCESS_CONTROL_LIST)
    if call.store.ip_acl(call.account.sid, call.region, sid) is None:
        raise call.missing()
    return sid


IP_ADDRESS_PARAMETERS = ("FriendlyName", "IpAddress", "CidrPrefixLength")


def ip_address_settings(params: dict[str, str]) -> dict[str, object]:
    settings: dict[str, object] = {}
    if "FriendlyName" in params:
        settings["friendly_name"] = rules.ip_address_friendly_name(
            rules.required(params["FriendlyName"], "FriendlyName", ErrorCode.IP_ADDRESS_VALIDATION)
        )
    if "IpAddress" in params:
        settings["ip_address"] = rules.ipv4_address(
            rules.required(params["IpAddress"], "IpAddress", ErrorCode.IP_ADDRESS_VALIDATION)
        )
    if "CidrPrefixLength" in params:
        settings["cidr_prefix_length"] = rules.cidr_prefix_length(params["CidrPrefixLength"])
    return settings


async def list_ip_addresses(call: ApiRequest) -> web.Response:
    acl_sid = _existing_acl_sid(call)
    return list_response(
        call,
        "ip_addresses",
        lambda request: call.store.list_ip_addresses(call.account.sid, call.region, acl_sid, request),
        shapes.ip_address_json,
    )


async def create_ip_address(call: ApiRequest) -> web.Response:
    acl_sid = _existing_acl_sid(call)
    params = call.params(*IP_ADDRESS_PARAMETERS)
    for name in ("FriendlyName", "IpAddress"):
        rules.required(params.get(name), name, ErrorCode.IP_ADDRESS_VALIDATION)
    settings = ip_address_settings(params)
    entry = call.store.create_ip_address(
        call.account.sid,
        call.region,
        acl_sid,
        str(settings["friendly_name"]),
        str(settings["ip_address"]),
        int(settings.get("cidr_prefix_length", 32)),  # type: ignore[call-overload]
    )
    return json_response(shapes.ip_address_json(entry), 201)


async def fetch_ip_address(call: ApiRequest) -> web.Response:
    acl_sid = _existing_acl_sid(call)
    entry = call.store.ip_address(
        call.account.sid, call.region, acl_sid, call.sid("Sid", SidPrefix.IP_ADDRESS)
    )
    if entry is None:
        raise call.missing()
    return json_response(shapes.ip_address_json(entry))


async def update_ip_address(call: ApiRequest) -> web.Response:
    acl_sid = _existing_acl_sid(call)
    sid = call.sid("Sid", SidPrefix.IP_ADDRESS)
    settings = ip_address_settings(call.params(*IP_ADDRESS_PARAMETERS))
    entry = call.store.update_ip_address(call.account.sid, call.region, acl_sid, sid, settings)
    return json_response(shapes.ip_address_json(entry))


async def delete_ip_address(call: ApiRequest) -> web.Response:
    acl_sid = _existing_acl_sid(call)
    sid = call.sid("Sid", SidPrefix.IP_ADDRESS)
    if not call.store.delete_ip_address(call.account.sid, call.region, acl_sid, sid):
        raise call.missing()
    return no_content()


# --- credential lists and credentials ---------------------------------------------------------


async def list_credential_lists(call: ApiRequest) -> web.Response:
    return list_response(
        call,
        "credential_lists",
        lambda request: call.store.list_credential_lists(call.account.sid, call.region, request),
        shapes.credential_list_json,
    )


async def create_credential_list(call: ApiRequest) -> web.Response:
    name = rules.credential_list_friendly_name(call.params("FriendlyName").get("FriendlyName"))
    created = call.store.create_credential_list(call.account.sid, call.region, name)
    return json_response(shapes.credential_list_json(created), 201)


async def fetch_credential_list(call: ApiRequest) -> web.Response:
    found = call.store.credential_list(
        call.account.sid, call.region, call.sid("Sid", SidPrefix.CREDENTIAL_LIST)
    )
    if found is None:
        raise call.missing()
    return json_response(shapes.credential_list_json(found))


async def update_credential_list(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.CREDENTIAL_LIST)
    name = rules.credential_list_friendly_name(call.params("FriendlyName").get("FriendlyName"))
    updated = call.store.update_credential_list(call.account.sid, call.region, sid, name)
    return json_response(shapes.credential_list_json(updated))


async def delete_credential_list(call: ApiRequest) -> web.Response:
    sid = call.sid("Sid", SidPrefix.CREDENTIAL_LIST)
    if not call.store.delete_credential_list(call.account.sid, call.region, sid):
        raise call.missing()
    return no_content()


def _existing_credential_list_sid(call: ApiRequest) -> str:
    sid = call.sid("CredentialListSid", SidPrefix.CREDENTIAL_LIST)
    if call.store.credential_list(call.account.sid, call.region, sid) is None:
        raise call.missing()
    return sid


async def list_credentials(call: ApiRequest) -> web.Response:
    list_sid = _existing_credential_list_sid(call)
    return list_response(
        call,
        "credentials",
        lambda request: call.store.list_credentials(call.account.sid, call.region, list_sid, request),
        shapes.credential_json,
    )


async def create_credential(call: ApiRequest) -> web.Response:
    list_sid = _existing_credential_list_sid(call)
    params = call.params("Username", "Password")
    username = rules.username(params.get("Username"))
    password = rules.password(params.get("Password"))
    created = call.store.create_credential(call.account.sid, call.region, list_sid, username, password)
    return json_response(shapes.credential_json(created), 201)


async def fetch_credential(call: ApiRequest) -> web.Response:
    list_sid = _existing_credential_list_sid(call)
    found = call.store.credential(
        call.account.sid, call.region, list_sid, call.sid("Sid", SidPrefix.CREDENTIAL)
    )
    if found is None:
        raise call.missing()
    return json_response(shapes.credential_json(found))


async def update_credential(call: ApiRequest) -> web.Response:
    list_sid = _existing_credential_list_sid(call)
    sid = call.sid("Sid", SidPrefix.CREDENTIAL)
    params = call.params("Password")
    if "Password" not in params:  # nothing else is updatable: an empty update changes nothing
        found = call.store.credential(call.account.sid, call.region, list_sid, sid)
        if found is None:
            raise call.missing()
        return json_response(shapes.credential_json(found))
    password = rules.password(params["Password"])
    updated = call.store.update_credential_password(
        call.account.sid, call.region, list_sid, sid, password
    )
    return json_response(shapes.credential_json(updated))


async def delete_credential(call: ApiRequest) -> web.Response:
    list_sid = _existing_credential_list_sid(call)
    sid = call.sid("Sid", SidPrefix.CREDENTIAL)
    if not call.store.delete_credential(call.account.sid, call.region, list_sid, sid):
        raise call.missing()
    return no_content()


# --- routes API: inbound processing region (global) -----------------------------------------


def _owned_route(call: ApiRequest) -> Any:
    name = call.parts["SipDomain"].lower()
    route = call.store.route(name)
    if route is None:
        raise call.missing()
    owner = call.store.account(route.account_sid)
    if owner is None or (owner.sid != call.caller.sid and owner.owner_account_sid != call.caller.sid):
        # Another account's domain: indistinguishable from one that does not exist.
        raise call.missing()
    return route


async def fetch_route(call: ApiRequest) -> web.Response:
    return json_response(shapes.route_json(_owned_route(call)))


async def update_route(call: ApiRequest) -> web.Response:
    route = _owned_route(call)
    params = call.params("VoiceRegion", "FriendlyName")
    region = (
        rules.voice_region(params["VoiceRegion"], PROCESSING_REGIONS)
        if "VoiceRegion" in params
        else None
    )
    name = rules.route_friendly_name(params["FriendlyName"]) if "FriendlyName" in params else None
    updated = call.store.update_route(route.domain_name, region, name)
    return json_response(shapes.route_json(updated))


# --- the route table --------------------------------------------------------------------------

SIP = "/2010-04-01/Accounts/{AccountSid}/SIP"
KEYS = "/2010-04-01/Accounts/{AccountSid}/Keys"
NUMBERS = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers"
# What a standard API key may not reach (spec 2.2): these take the account's auth token.
ACCOUNT_CREDENTIALS_ONLY = ("/2010-04-01/Accounts.json", "/2010-04-01/Accounts/{AccountSid}.json",
                            KEYS + ".json", KEYS + "/{Sid}.json")
DOMAIN = SIP + "/Domains/{DomainSid}"

MAPPING_FAMILIES: dict[str, MappingFamily] = {
    DOMAIN + "/CredentialListMappings": MappingFamily(
        MappingPurpose.CALLS, ListKind.CREDENTIAL_LIST, "credential_list_mappings",
        shapes.legacy_mapping_json,
    ),
    DOMAIN + "/IpAccessControlListMappings": MappingFamily(
        MappingPurpose.CALLS, ListKind.IP_ACCESS_CONTROL_LIST, "ip_access_control_list_mappings",
        shapes.legacy_mapping_json,
    ),
    DOMAIN + "/Auth/Calls/CredentialListMappings": MappingFamily(
        MappingPurpose.CALLS, ListKind.CREDENTIAL_LIST, "contents", shapes.auth_mapping_json,
    ),
    DOMAIN + "/Auth/Calls/IpAccessControlListMappings": MappingFamily(
        MappingPurpose.CALLS, ListKind.IP_ACCESS_CONTROL_LIST, "contents", shapes.auth_mapping_json,
    ),
    DOMAIN + "/Auth/Registrations/CredentialListMappings": MappingFamily(
        MappingPurpose.REGISTRATIONS, ListKind.CREDENTIAL_LIST, "contents",
        shapes.auth_mapping_json,
    ),
}


def build_routes() -> list[Route]:
    table: dict[str, dict[str, Handler]] = {
        "/2010-04-01/Accounts.json": {"GET": list_accounts, "POST": create_account},
        "/2010-04-01/Accounts/{AccountSid}.json": {"GET": fetch_account, "POST": update_account},
        KEYS + ".json": {"GET": list_api_keys, "POST": create_api_key},
        KEYS + "/{Sid}.json": {
            "GET": fetch_api_key, "POST": update_api_key, "DELETE": delete_api_key,
        },
        SIP + "/Domains.json": {"GET": list_domains, "POST": create_domain},
        SIP + "/Domains/{Sid}.json": {
            "GET": fetch_domain, "POST": update_domain, "DELETE": delete_domain,
        },
        SIP + "/IpAccessControlLists.json": {"GET": list_ip_acls, "POST": create_ip_acl},
        SIP + "/IpAccessControlLists/{Sid}.json": {
            "GET": fetch_ip_acl, "POST": update_ip_acl, "DELETE": delete_ip_acl,
        },
        SIP + "/IpAccessControlLists/{IpAccessControlListSid}/IpAddresses.json": {
            "GET": list_ip_addresses, "POST": create_ip_address,
        },
        SIP + "/IpAccessControlLists/{IpAccessControlListSid}/IpAddresses/{Sid}.json": {
            "GET": fetch_ip_address, "POST": update_ip_address, "DELETE": delete_ip_address,
        },
        SIP + "/CredentialLists.json": {"GET": list_credential_lists, "POST": create_credential_list},
        SIP + "/CredentialLists/{Sid}.json": {
            "GET": fetch_credential_list, "POST": update_credential_list,
            "DELETE": delete_credential_list,
        },
        SIP + "/CredentialLists/{CredentialListSid}/Credentials.json": {
            "GET": list_credentials, "POST": create_credential,
        },
        SIP + "/CredentialLists/{CredentialListSid}/Credentials/{Sid}.json": {
            "GET": fetch_credential, "POST": update_credential, "DELETE": delete_credential,
        },
        "/v2/SipDomains/{SipDomain}": {"GET": fetch_route, "POST": update_route},
        "/v1/ByocTrunks": {"GET": list_byoc_trunks, "POST": create_byoc_trunk},
        "/v1/ByocTrunks/{Sid}": {
            "GET": fetch_byoc_trunk, "POST": update_byoc_trunk, "DELETE": delete_byoc_trunk,
        },
        NUMBERS + ".json": {"GET": list_phone_numbers, "POST": create_phone_number},
        NUMBERS + "/{Sid}.json": {
            "GET": fetch_phone_number, "POST": update_phone_number, "DELETE": delete_phone_number,
        },
    }
    for base, family in MAPPING_FAMILIES.items():
        collection, instance = mapping_handlers(family)
        table[base + ".json"] = collection
        table[base + "/{Sid}.json"] = instance
    table.update(CALL_ROUTES)
    return [Route(compile_route(template), methods, template in ACCOUNT_CREDENTIALS_ONLY)
            for template, methods in table.items()]


# --- dispatch -----------------------------------------------------------------------------------


class Dispatcher:
    def __init__(self, store: Store, settings: ApiSettings) -> None:
        self.store = store
        self.settings = settings
        self.routes = build_routes()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._dispatch(request)
        except TwilioError as error:
            response = error_response(error)
        except MissingResource:
            response = error_response(not_found(request.path))
        except Exception:  # a bug must still answer in Twilio's shape, and be logged
            log.exception("internal error handling %s %s", request.method, request.path)
            response = error_response(TwilioError(500, ErrorCode.INTERNAL, "Internal Server Error"))
        response.headers["Twilio-Request-Id"] = new_request_id()
        response.headers["X-Home-Region"] = HOME_REGION
        return response

    async def _dispatch(self, request: web.Request) -> web.Response:
        selection = select_region(request.headers.get("Host"), request.path)
        authenticated = authenticate(request, self.store, selection.region)
        caller = authenticated.account
        for route in self.routes:
            match = route.pattern.match(selection.path)
            if match is None:
                continue
            handler = route.methods.get(request.method)
            if handler is None:
                raise method_not_allowed(request.method, request.path)
            if route.account_credentials_only:
                ensure_account_credentials(authenticated)
            parts = match.groupdict()
            account = caller
            if "AccountSid" in parts:
                account = resolve_path_account(request.path, caller, self.store, parts["AccountSid"])
            call = ApiRequest(
                request=request,
                store=self.store,
                settings=self.settings,
                caller=caller,
                region=selection.region,
                path=selection.path,
                parts=parts,
                account=account,
                query=read_query(request),
            )
            if request.method == "POST":
                call.form = await read_form(request, self.settings)
            return await handler(call)
        raise not_found(request.path)


@web.middleware
async def _twilio_shaped_refusals(request: web.Request, handler) -> web.StreamResponse:
    """What aiohttp's router refuses before the dispatcher runs (a request target that is not
    a path, such as CONNECT's host:port) in Twilio's JSON shape rather than plain text."""
    try:
        return await handler(request)
    except web.HTTPException as refusal:
        if refusal.status < 400:
            raise
        code = ErrorCode.NOT_FOUND if refusal.status == 404 else ErrorCode.INVALID_PARAMETER
        return error_response(TwilioError(refusal.status, code, refusal.reason))


def make_app(store: Store, settings: ApiSettings | None = None,
             calls: CallRegistry | None = None, diagnose: Diagnose | None = None) -> web.Application:
    """The control-plane REST API over ``store``; embed it or serve it with ``web.AppRunner``.

    ``calls`` is the running twin's call registry, read by the Calls endpoints (empty lists
    without one, as for a control plane serving no SIP nodes); ``diagnose`` gives a call's
    findings (``siptwin.diagnostics.diagnose_call``), served as notifications and by
    ``Findings.json``.
    """
    effective = settings or ApiSettings()
    # aiohttp's own body limit stays above ours so our Twilio-shaped 413 answers first.
    app = web.Application(client_max_size=effective.max_body_bytes * 4,
                          middlewares=[_twilio_shaped_refusals])
    app[STORE_KEY] = store
    app[SETTINGS_KEY] = effective
    if calls is not None:
        app[CALLS_KEY] = calls
    if diagnose is not None:
        app[DIAGNOSE_KEY] = diagnose
    dispatcher = Dispatcher(store, effective)

    async def handle(request: web.Request) -> web.StreamResponse:
        return await dispatcher(request)

    app.router.add_route("*", "/{tail:.*}", handle)
    return app
