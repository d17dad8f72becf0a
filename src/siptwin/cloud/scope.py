"""Where each piece of control-plane state lives: globally, per account, or per region.

Twilio runs isolated copies of SIP resources in each processing region (spec 6.3): a domain,
list or credential created through ``api.dublin.ie1.twilio.com`` does not exist for
``api.twilio.com``.  A few things are deliberately *not* regional: the domain-name registry
(a host name belongs to one account world-wide) and the routing table that says which
region's copy of a host name is active.  An account (its SID, name and status) is global,
but its credentials are not (spec 2.1, 6.3): each processing region has its own auth token
for the same account SID, and an API key exists only in the region that created it.

Declaring the scope of every table here keeps that decision in one place; the store and
tests consult :data:`TABLE_SCOPES` rather than re-deciding it.
"""

from __future__ import annotations

from enum import StrEnum


class StateScope(StrEnum):
    GLOBAL = "global"
    PER_ACCOUNT = "per-account"
    PER_ACCOUNT_PER_REGION = "per-account-per-region"


DEFAULT_REGION = "us1"
PROCESSING_REGIONS: tuple[str, ...] = ("us1", "ie1", "au1")

TABLE_SCOPES: dict[str, StateScope] = {
    # Identity: an account is the same in every region; accounts.auth_token is the token of
    # the home region (us1), region_auth_tokens holds the other regions' tokens.
    "accounts": StateScope.GLOBAL,
    "region_auth_tokens": StateScope.PER_ACCOUNT_PER_REGION,
    "api_keys": StateScope.PER_ACCOUNT_PER_REGION,
    "meta": StateScope.GLOBAL,
    # Host name -> active processing region; also the world-wide name registry, because a
    # row exists exactly while some region holds a domain with that name.
    "domain_routes": StateScope.GLOBAL,
    # The change feed covers every scope so one follower sees everything.
    "changes": StateScope.GLOBAL,
    # SIP resources: one isolated copy per (account, region).
    "domains": StateScope.PER_ACCOUNT_PER_REGION,
    "ip_access_control_lists": StateScope.PER_ACCOUNT_PER_REGION,
    "ip_addresses": StateScope.PER_ACCOUNT_PER_REGION,
    "credential_lists": StateScope.PER_ACCOUNT_PER_REGION,
    "credentials": StateScope.PER_ACCOUNT_PER_REGION,
    "domain_mappings": StateScope.PER_ACCOUNT_PER_REGION,
    # What a domain names (byoc_trunk_sid, emergency_caller_sid): regions run in isolation,
    # and a phone number's configuration is region-specific too.
    "byoc_trunks": StateScope.PER_ACCOUNT_PER_REGION,
    "incoming_phone_numbers": StateScope.PER_ACCOUNT_PER_REGION,
}


def is_processing_region(region: str) -> bool:
    return region in PROCESSING_REGIONS
