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
    Credential,
    CredentialList,
    Domain,
    DomainMapping,
    DomainRoute,
    IpAccessControlList,
    IpAddress,
    Page,
    RecordT,
)

API_VERSION = "2010-04-01"
ROUTES_BASE_URL = "https://routes.twilio.com"
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
        query = [*extra_query, ("PageSize", str(page_size)), ("Page", str(number))]
        if token is not None:
            query.append(("PageToken", token))
        return f"{collection_path}?{urlencode(query)}"

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
