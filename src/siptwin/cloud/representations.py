"""JSON shapes exactly as Twilio returns them (field names, URIs, dates, list envelopes).

Field sets follow Twilio's OpenAPI documents (vendored in tests/data/openapi); the
tests compare every body's keys with the schema's property set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from .model import (
    Account,
    ApiKey,
    ByocTrunk,
    Credential,
    CredentialList,
    Domain,
    DomainMapping,
    DomainRoute,
    IpAccessControlList,
    IpAddress,
    Page,
    PhoneNumber,
    RecordT,
)

API_VERSION = "2010-04-01"
ROUTES_BASE_URL = "https://routes.twilio.com"
VOICE_BASE_URL = "https://voice.twilio.com"
JsonObject = dict[str, Any]


def rfc2822(epoch_seconds: int) -> str:
    """``Tue, 04 Mar 2025 09:15:00 +0000``: the 2010 API's date format."""
    return format_datetime(datetime.fromtimestamp(epoch_seconds, UTC))


def iso8601(epoch_seconds: int) -> str:
    """``2020-08-07T22:29:24Z``: the format of the newer (routes) APIs."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def account_base(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def domain_uri(domain: Domain) -> str:
    return f"{account_base(domain.account_sid)}/SIP/Domains/{domain.sid}"


def account_json(account: Account) -> JsonObject:
    base = account_base(account.sid)
    return {
        "auth_token": account.auth_token,
        "date_created": rfc2822(account.date_created),
        "date_updated": rfc2822(account.date_updated),
        "friendly_name": account.friendly_name,
        "owner_account_sid": account.owner_account_sid,
        "sid": account.sid,
        "status": account.status,
        "subresource_uris": {"sip": f"{base}/SIP.json"},
        "type": "Full",
        "uri": f"{base}.json",
    }


def api_key_json(key: ApiKey) -> JsonObject:
    """Twilio's Key resource: no account SID, no URI, and the secret only on creation."""
    return {
        "date_created": rfc2822(key.date_created),
        "date_updated": rfc2822(key.date_updated),
        "friendly_name": key.friendly_name,
        "sid": key.sid,
    }


def new_api_key_json(key: ApiKey, secret: str) -> JsonObject:
    return {**api_key_json(key), "secret": secret}


def domain_json(domain: Domain) -> JsonObject:
    base = domain_uri(domain)
    return {
        "account_sid": domain.account_sid,
        "api_version": API_VERSION,
        "auth_type": domain.auth_type,
        "date_created": rfc2822(domain.date_created),
        "date_updated": rfc2822(domain.date_updated),
        "domain_name": domain.domain_name,
        "friendly_name": domain.friendly_name,
        "sid": domain.sid,
        "uri": f"{base}.json",
        "voice_fallback_method": domain.voice_fallback_method,
        "voice_fallback_url": domain.voice_fallback_url,
        "voice_method": domain.voice_method,
        "voice_status_callback_method": domain.voice_status_callback_method,
        "voice_status_callback_url": domain.voice_status_callback_url,
        "voice_url": domain.voice_url,
        "subresource_uris": {
            "credential_list_mappings": f"{base}/CredentialListMappings.json",
            "ip_access_control_list_mappings": f"{base}/IpAccessControlListMappings.json",
        },
        "sip_registration": domain.sip_registration,
        "emergency_calling_enabled": domain.emergency_calling_enabled,
        "secure": domain.secure,
        "byoc_trunk_sid": domain.byoc_trunk_sid,
        "emergency_caller_sid": domain.emergency_caller_sid,
    }


def ip_acl_json(acl: IpAccessControlList) -> JsonObject:
    base = f"{account_base(acl.account_sid)}/SIP/IpAccessControlLists/{acl.sid}"
    return {
        "sid": acl.sid,
        "account_sid": acl.account_sid,
        "friendly_name": acl.friendly_name,
        "date_created": rfc2822(acl.date_created),
        "date_updated": rfc2822(acl.date_updated),
        "subresource_uris": {"ip_addresses": f"{base}/IpAddresses.json"},
        "uri": f"{base}.json",
    }


def ip_address_json(entry: IpAddress) -> JsonObject:
    return {
        "sid": entry.sid,
        "account_sid": entry.account_sid,
        "friendly_name": entry.friendly_name,
        "ip_address": entry.ip_address,
        "cidr_prefix_length": entry.cidr_prefix_length,
        "ip_access_control_list_sid": entry.ip_access_control_list_sid,
        "date_created": rfc2822(entry.date_created),
        "date_updated": rfc2822(entry.date_updated),
        "uri": (
            f"{account_base(entry.account_sid)}/SIP/IpAccessControlLists/"
            f"{entry.ip_access_control_list_sid}/IpAddresses/{entry.sid}.json"
        ),
    }


def credential_list_json(credential_list: CredentialList) -> JsonObject:
    base = f"{account_base(credential_list.account_sid)}/SIP/CredentialLists/{credential_list.sid}"
    return {
        "account_sid": credential_list.account_sid,
        "date_created": rfc2822(credential_list.date_created),
        "date_updated": rfc2822(credential_list.date_updated),
        "friendly_name": credential_list.friendly_name,
        "sid": credential_list.sid,
        "subresource_uris": {"credentials": f"{base}/Credentials.json"},
        "uri": f"{base}.json",
    }


def credential_json(credential: Credential) -> JsonObject:
    """No password and no HA1: neither is ever part of a response."""
    return {
        "sid": credential.sid,
        "account_sid": credential.account_sid,
        "credential_list_sid": credential.credential_list_sid,
        "username": credential.username,
        "date_created": rfc2822(credential.date_created),
        "date_updated": rfc2822(credential.date_updated),
        "uri": (
            f"{account_base(credential.account_sid)}/SIP/CredentialLists/"
            f"{credential.credential_list_sid}/Credentials/{credential.sid}.json"
        ),
    }


def legacy_mapping_json(mapping: DomainMapping, collection_path: str) -> JsonObject:
    """Legacy mapping paths carry ``domain_sid`` and ``uri``; ``sid`` is the list's SID."""
    return {
        "account_sid": mapping.account_sid,
        "date_created": rfc2822(mapping.date_created),
        "date_updated": rfc2822(mapping.date_updated),
        "domain_sid": mapping.domain_sid,
        "friendly_name": mapping.list_friendly_name,
        "sid": mapping.list_sid,
        "uri": f"{collection_path.removesuffix('.json')}/{mapping.list_sid}.json",
    }


def auth_mapping_json(mapping: DomainMapping, collection_path: str) -> JsonObject:
    """``Auth/...`` mappings have only five fields: no ``uri``, no ``domain_sid``."""
    del collection_path  # same signature as legacy_mapping_json; Auth shapes carry no URI
    return {
        "account_sid": mapping.account_sid,
        "date_created": rfc2822(mapping.date_created),
        "date_updated": rfc2822(mapping.date_updated),
        "friendly_name": mapping.list_friendly_name,
        "sid": mapping.list_sid,
    }


def route_json(route: DomainRoute) -> JsonObject:
    return {
        "sip_domain": route.domain_name,
        "url": f"{ROUTES_BASE_URL}/v2/SipDomains/{route.domain_name}",
        "sid": route.sid,
        "account_sid": route.account_sid,
        "friendly_name": route.friendly_name,
        "voice_region": route.voice_region,
        "date_created": iso8601(route.date_created),
        "date_updated": iso8601(route.date_updated),
    }


def byoc_trunk_json(trunk: ByocTrunk) -> JsonObject:
    return {
        "account_sid": trunk.account_sid,
        "sid": trunk.sid,
        "friendly_name": trunk.friendly_name,
        "voice_url": trunk.voice_url,
        "voice_method": trunk.voice_method,
        "voice_fallback_url": trunk.voice_fallback_url,
        "voice_fallback_method": trunk.voice_fallback_method,
        "status_callback_url": trunk.status_callback_url,
        "status_callback_method": trunk.status_callback_method,
        "cnam_lookup_enabled": trunk.cnam_lookup_enabled,
        "connection_policy_sid": trunk.connection_policy_sid,
        "from_domain_sid": trunk.from_domain_sid,
        "date_created": iso8601(trunk.date_created),
        "date_updated": iso8601(trunk.date_updated),
        "url": f"{VOICE_BASE_URL}/v1/ByocTrunks/{trunk.sid}",
    }


def phone_number_json(number: PhoneNumber) -> JsonObject:
    """Every field of Twilio's resource; what the twin does not model has Twilio's value for
    a plain voice number (no SMS application, no address requirement, no trunk)."""
    return {
        "account_sid": number.account_sid,
        "address_sid": None,
        "address_requirements": "none",
        "api_version": API_VERSION,
        "beta": False,
        "capabilities": {"voice": True, "sms": False, "mms": False, "fax": False},
        "date_created": rfc2822(number.date_created),
        "date_updated": rfc2822(number.date_updated),
        "friendly_name": number.friendly_name,
        "identity_sid": None,
        "phone_number": number.phone_number,
        "origin": "twilio",
        "sid": number.sid,
        "sms_application_sid": None,
        "sms_fallback_method": "POST",
        "sms_fallback_url": None,
        "sms_method": "POST",
        "sms_url": None,
        "status_callback": number.status_callback,
        "status_callback_method": number.status_callback_method,
        "trunk_sid": None,
        "uri": f"{account_base(number.account_sid)}/IncomingPhoneNumbers/{number.sid}.json",
        "voice_receive_mode": "voice",
        "voice_application_sid": None,
        "voice_caller_id_lookup": False,
        "voice_fallback_method": number.voice_fallback_method,
        "voice_fallback_url": number.voice_fallback_url,
        "voice_method": number.voice_method,
        "voice_url": number.voice_url,
        "emergency_status": number.emergency_status,
        "emergency_address_sid": number.emergency_address_sid,
        "emergency_address_status": (
            "registered" if number.emergency_address_sid else "unregistered"),
        "bundle_sid": None,
        "status": "in-use",
        "type": "local",
    }


def page_address(collection: str, extra_query: Sequence[tuple[str, str]], page_size: int,
                 number: int, token: str | None) -> str:
    """One page of a collection: its filters, then ``PageSize``, ``Page`` and ``PageToken``."""
    query = [*extra_query, ("PageSize", str(page_size)), ("Page", str(number))]
    if token is not None:
        query.append(("PageToken", token))
    return f"{collection}?{urlencode(query)}"


def meta_envelope(
    collection_url: str,
    key: str,
    page: Page[RecordT],
    render: Callable[[RecordT], JsonObject],
    page_size: int,
    page_number: int,
    next_page_token: str | None,
) -> JsonObject:
    """The paging envelope of the newer (v1) APIs: absolute URLs under ``meta``. The SDK
    follows ``next_page_url`` as it is, so ``collection_url`` is the address the request
    reached (the twin's own, region prefix included)."""

    def page_url(number: int, token: str | None = None) -> str:
        return page_address(collection_url, (), page_size, number, token)

    return {
        key: [render(record) for record in page.records],
        "meta": {
            "page": page_number,
            "page_size": page_size,
            "first_page_url": page_url(0),
            "previous_page_url": page_url(page_number - 1) if page_number > 0 else None,
            "url": page_url(page_number),
            "next_page_url": page_url(page_number + 1, next_page_token) if page.has_more else None,
            "key": key,
        },
    }


def list_envelope(
    collection_path: str,
    array_key: str,
    page: Page[RecordT],
    render: Callable[[RecordT], JsonObject],
    page_size: int,
    page_number: int,
    next_page_token: str | None,
    extra_query: Sequence[tuple[str, str]] = (),
) -> JsonObject:
    """The 2010-style paging envelope: URIs relative to the host, PageSize and Page in each."""

    def page_uri(number: int, token: str | None = None) -> str:
        return page_address(collection_path, extra_query, page_size, number, token)

    start = page_number * page_size
    end = start + len(page.records) - 1 if page.records else start
    if not page.records and page_number == 0:
        start = end = 0
    return {
        array_key: [render(record) for record in page.records],
        "end": end,
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page_number + 1, next_page_token) if page.has_more else None,
        "page": page_number,
        "page_size": page_size,
        "previous_page_uri": page_uri(page_number - 1) if page_number > 0 else None,
        "start": start,
        "uri": page_uri(page_number),
    }
