"""Provision the twin the way users provision Twilio: through the official ``twilio`` SDK.

Synchronous (the SDK is); from asyncio code call it with ``asyncio.to_thread``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client


@dataclass
class DomainPlan:
    label: str  # "acme" -> acme.sip.twilio.com
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    voice_status_callback_url: str | None = None
    secure: bool = False
    sip_registration: bool = False
    acl: list[str] = field(default_factory=list)  # "127.0.0.10" or "127.0.0.0/24"
    credentials: list[tuple[str, str]] = field(default_factory=list)
    registration_credentials: list[tuple[str, str]] = field(default_factory=list)
    region: str = "us1"  # processing region of the control plane
    account_sid: str | None = None  # a sub-account's SID: created in that account


@dataclass
class Provisioned:
    domain_sid: str
    domain_name: str
    acl_sid: str | None
    credential_list_sid: str | None
    acl_entry_sids: list[str] = field(default_factory=list)
    credential_list_sids: list[str] = field(default_factory=list)  # call and registration lists
    account_sid: str | None = None  # None: the client's own account


def sdk_client(api_url: str, account_sid: str, auth_token: str, region: str = "us1") -> Client:
    """An SDK client for ``region``; ``auth_token`` must be that region's (each processing
    region has its own token, spec 2.1: a twin's ``auth_tokens[region]``)."""
    client = Client(account_sid, auth_token)
    # The twin's API is local: a proxy or CA bundle named in the environment has no say in
    # reaching it, and looking them up again for every request was a sixth of the SDK's own
    # work per request (requests' merge_environment_settings).
    client.http_client.session.trust_env = False
    suffix = "" if region == "us1" else f"/{region}"
    client.api.base_url = api_url + suffix
    client.routes.base_url = api_url + suffix
    client.voice.base_url = api_url + suffix  # BYOC trunks (voice.twilio.com/v1)
    return client


def _sip(client: Client, account_sid: str | None) -> Any:
    """The SIP resources of the client's account, or of one of its sub-accounts."""
    return (client.api.v2010.accounts(account_sid).sip if account_sid
            else client.api.v2010.account.sip)


def provision(client: Client, plan: DomainPlan) -> Provisioned:
    sip = _sip(client, plan.account_sid)
    domain = sip.domains.create(
        domain_name=f"{plan.label}.sip.twilio.com",
        voice_url=plan.voice_url,
        voice_method=plan.voice_method,
        voice_fallback_url=plan.voice_fallback_url,
        voice_status_callback_url=plan.voice_status_callback_url,
        secure=plan.secure,
        sip_registration=plan.sip_registration,
    )
    acl_sid = cl_sid = None
    entry_sids: list[str] = []
    registration_sid = None
    if plan.acl:
        acl = sip.ip_access_control_lists.create(friendly_name=f"{plan.label}-acl")
        acl_sid = acl.sid
        for i, entry in enumerate(plan.acl):
            network = ipaddress.ip_network(entry, strict=False)
            entry = sip.ip_access_control_lists(acl.sid).ip_addresses.create(
                friendly_name=f"entry-{i}", ip_address=str(network.network_address),
                cidr_prefix_length=network.prefixlen,
            )
            entry_sids.append(entry.sid)
        sip.domains(domain.sid).auth.calls.ip_access_control_list_mappings.create(
            ip_access_control_list_sid=acl.sid)
    if plan.credentials:
        cl_sid = _credential_list(sip, f"{plan.label}-users", plan.credentials)
        sip.domains(domain.sid).auth.calls.credential_list_mappings.create(
            credential_list_sid=cl_sid)
    if plan.registration_credentials:
        registration_sid = _credential_list(sip, f"{plan.label}-registrations",
                                            plan.registration_credentials)
        sip.domains(domain.sid).auth.registrations.credential_list_mappings.create(
            credential_list_sid=registration_sid)
    lists = [sid for sid in (cl_sid, registration_sid) if sid]
    return Provisioned(domain.sid, domain.domain_name, acl_sid, cl_sid, entry_sids, lists,
                       plan.account_sid)


@dataclass
class SubAccount:
    sid: str
    auth_token: str


def create_subaccount(client: Client, friendly_name: str) -> SubAccount:
    account = client.api.v2010.accounts.create(friendly_name=friendly_name)
    return SubAccount(account.sid, account.auth_token)


def close_subaccount(client: Client, sub: SubAccount) -> None:
    client.api.v2010.accounts(sub.sid).update(status="closed")


def _credential_list(sip: Any, name: str, users: list[tuple[str, str]]) -> str:
    """A credential list holding ``users``; returns its SID."""
    created = sip.credential_lists.create(friendly_name=name)
    for username, password in users:
        sip.credential_lists(created.sid).credentials.create(username=username, password=password)
    return str(created.sid)


def deprovision(client: Client, provisioned: Provisioned) -> None:
    """Delete what :func:`provision` created (domains count against a per-account limit).
    A domain the scenario deleted itself is already gone: that 404 is fine."""
    sip = _sip(client, provisioned.account_sid)
    try:
        sip.domains(provisioned.domain_sid).delete()
    except TwilioRestException as err:
        if err.status != 404:
            raise
    for list_sid in provisioned.credential_list_sids:
        sip.credential_lists(list_sid).delete()
    if provisioned.acl_sid:
        sip.ip_access_control_lists(provisioned.acl_sid).delete()
