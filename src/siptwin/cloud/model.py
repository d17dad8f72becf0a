"""Records the control plane stores, as plain frozen dataclasses.

Times are whole seconds since the epoch (UTC): Twilio's RFC 2822 dates carry no sub-second
part, so storing more would only make equal-looking dates compare unequal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

RecordT = TypeVar("RecordT")


@dataclass(frozen=True)
class Limits:
    """Per-account and per-list ceilings (spec 3.8).  Lowered in tests to keep them fast."""

    domains_per_account: int = 100
    ip_acls_per_account: int = 1000
    addresses_per_ip_acl: int = 100  # the older 21237 text says 25; the docs say 100
    credential_lists_per_account: int = 100
    credentials_per_list: int = 1000
    credential_lists_per_domain: int = 100
    api_keys_per_account: int = 1000  # per region; a twin-only bound (Twilio documents none)
    byoc_trunks_per_account: int = 1000  # per region; twin-only bounds, like the API keys'
    phone_numbers_per_account: int = 1000


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


@dataclass(frozen=True)
class Account:
    seq: int
    sid: str
    auth_token: str
    friendly_name: str
    owner_account_sid: str  # equals sid for a top-level (master) account
    status: str
    date_created: int
    date_updated: int

    @property
    def is_subaccount(self) -> bool:
        return self.owner_account_sid != self.sid


@dataclass(frozen=True)
class ApiKey:
    """A standard API key; Twilio shows the secret once, so only its SHA-256 is kept."""

    seq: int
    sid: str
    account_sid: str
    region: str
    friendly_name: str | None
    secret_sha256: str
    date_created: int
    date_updated: int


@dataclass(frozen=True)
class ByocTrunk:
    """A Voice v1 BYOC trunk: what a domain's ``byoc_trunk_sid`` names. Stored and served;
    the twin places no call over it."""

    seq: int
    sid: str
    account_sid: str
    region: str
    friendly_name: str | None
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    status_callback_url: str | None
    status_callback_method: str
    cnam_lookup_enabled: bool
    connection_policy_sid: str | None
    from_domain_sid: str | None
    date_created: int
    date_updated: int


@dataclass(frozen=True)
class PhoneNumber:
    """An incoming phone number: what a domain's ``emergency_caller_sid`` names. The twin
    provisions the number asked for (there is no inventory to buy from) and routes no call
    to it."""

    seq: int
    sid: str
    account_sid: str
    region: str
    phone_number: str
    friendly_name: str
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    status_callback: str | None
    status_callback_method: str
    emergency_status: str
    emergency_address_sid: str | None
    date_created: int
    date_updated: int


@dataclass(frozen=True)
class Domain:
    seq: int
    sid: str
    account_sid: str
    region: str
    domain_name: str
    friendly_name: str | None
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    voice_status_callback_url: str | None
    voice_status_callback_method: str
    sip_registration: bool
    emergency_calling_enabled: bool
    secure: bool
    byoc_trunk_sid: str | None
    emergency_caller_sid: str | None
    date_created: int
    date_updated: int
    auth_type: str  # derived from call-auth mappings when read


@dataclass(frozen=True)
class IpAccessControlList:
    seq: int
    sid: str
    account_sid: str
    region: str
    friendly_name: str
    date_created: int
    date_updated: int


@dataclass(frozen=True)
class IpAddress:
    seq: int
    sid: str
    account_sid: str
    region: str
    ip_access_control_list_sid: str
    friendly_name: str
    ip_address: str
    cidr_prefix_length: int
    date_created: int
    date_updated: int


@dataclass(frozen=True)
class CredentialList:
    seq: int
    sid: str
    account_sid: str
    region: str
    friendly_name: str
    date_created: int
    date_updated: int


@dataclass(frozen=True)
class Credential:
    """A SIP credential; only digest HA1 values are kept, never the password."""

    seq: int
    sid: str
    account_sid: str
    region: str
    credential_list_sid: str
    username: str
    ha1_md5: str
    ha1_sha256: str
    date_created: int
    date_updated: int


class MappingPurpose(StrEnum):
    """Which SIP requests a mapped list gates (spec 1): INVITEs or REGISTERs."""

    CALLS = "calls"
    REGISTRATIONS = "registrations"


class ListKind(StrEnum):
    CREDENTIAL_LIST = "CL"
    IP_ACCESS_CONTROL_LIST = "AL"


@dataclass(frozen=True)
class DomainMapping:
    """A list attached to a domain; its public SID is the mapped list's SID."""

    seq: int
    domain_sid: str
    purpose: MappingPurpose
    list_kind: ListKind
    list_sid: str
    list_friendly_name: str
    account_sid: str
    region: str
    date_created: int
    date_updated: int


@dataclass(frozen=True)
class DomainRoute:
    """Global routing record: which region's copy of a host name receives SIP traffic."""

    sid: str
    domain_name: str
    account_sid: str
    friendly_name: str | None
    voice_region: str
    previous_region: str | None
    effective_at: int  # until then, ``previous_region`` still receives traffic (spec 3.9)
    date_created: int
    date_updated: int

    def active_region(self, now: float) -> str:
        if self.previous_region is not None and now < self.effective_at:
            return self.previous_region
        return self.voice_region


@dataclass(frozen=True)
class Page(Generic[RecordT]):
    records: list[RecordT]
    has_more: bool


@dataclass(frozen=True)
class Change:
    """One committed change, as followed by region nodes through the change feed.

    ``kind`` is ``<resource>.<created|updated|deleted>``, for example ``domain.updated`` or
    ``call_mapping.created``; ``parent_sid`` names the containing resource (the list of an
    address or credential, the domain of a mapping) and is None for top-level resources.
    """

    version: int
    kind: str
    sid: str
    account_sid: str | None
    region: str | None
    parent_sid: str | None = None


@dataclass(frozen=True)
class PageRequest:
    """Which slice of a collection to read: after a token's position, or at an offset."""

    limit: int
    offset: int = 0
    after_seq: int | None = None
