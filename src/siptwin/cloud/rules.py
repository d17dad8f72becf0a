"""Twilio's validation rules for SIP resources, each in one function raising its error code.

Rules that depend on stored state take the relevant facts as arguments (who owns a name,
how many lists exist...) so that every code, message and threshold is decided here and the
store only gathers facts.  Section numbers (spec §N) refer to docs/twilio-behaviour.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from ..model.sids import SidPrefix, is_sid
from .errors import ErrorCode, TwilioError, bad_request, not_found
from .model import AccountStatus, Limits, ListKind

DOMAIN_SUFFIX = ".sip.twilio.com"
MAX_DOMAIN_NAME_LENGTH = 253  # DNS limit; Twilio's own limit is undocumented (spec 9)
MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_ACCOUNT_SID_LABEL = re.compile(r"ac[0-9a-f]{32}")

DOMAIN_FRIENDLY_NAME_MAX = 64
CREDENTIAL_LIST_FRIENDLY_NAME_MAX = 64
IP_ACL_FRIENDLY_NAME_MAX = 255
API_KEY_FRIENDLY_NAME_MAX = 64
BYOC_TRUNK_FRIENDLY_NAME_MAX = 255
PHONE_NUMBER_FRIENDLY_NAME_MAX = 64
IP_ADDRESS_FRIENDLY_NAME_MAX = 255
ROUTE_FRIENDLY_NAME_MAX = 64
ACCOUNT_FRIENDLY_NAME_MAX = 64
URL_MAX = 4096
USERNAME_MAX = 32
PASSWORD_MIN = 12
# No maximum password length: Twilio documents none (spec §3.5). The request body limit
# (64 KiB, cloud.params) already bounds what one request can make the twin hash.
# SIP user-info characters that need no escaping (RFC 3261 "unreserved" + user-unreserved).
_USERNAME = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
HTTP_METHODS = ("GET", "POST")
# "twiml:" is a twin extension: an inline TwiML document instead of a webhook, so scenarios
# can run without an HTTP server.  Twilio itself only takes http(s) URLs.
_URL_SCHEMES = ("http", "https", "twiml")


# --- generic parameter shapes -------------------------------------------------------------


def required(value: str | None, param: str, code: ErrorCode) -> str:
    """Missing required parameter: 400 with the resource's validation code (spec 2.6)."""
    if value is None or value == "":
        raise bad_request(code, f"Required parameter {param} missing.")
    return value


def bounded_text(value: str, param: str, maximum: int, code: ErrorCode) -> str:
    if len(value) > maximum:
        raise bad_request(code, f"{param} must be at most {maximum} characters long.")
    if any(ord(ch) < 0x20 and ch not in "\t" for ch in value):
        raise bad_request(code, f"{param} must not contain control characters.")
    return value


def url(value: str, param: str, code: ErrorCode) -> str | None:
    """An absolute URL, or ``""`` to clear the field (stored as null)."""
    if value == "":
        return None
    bounded_text(value, param, URL_MAX, code)
    parts = urlsplit(value)
    if parts.scheme.lower() not in _URL_SCHEMES:
        raise bad_request(code, f"{param} is not a valid URL: {value!r}")
    if parts.scheme.lower() != "twiml" and not parts.netloc:
        raise bad_request(code, f"{param} is not a valid URL: {value!r}")
    return value


def http_method(value: str, param: str, code: ErrorCode) -> str:
    method = value.upper()
    if method not in HTTP_METHODS:
        raise bad_request(code, f"{param} must be GET or POST.")
    return method


def boolean(value: str, param: str, code: ErrorCode) -> bool:
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise bad_request(code, f"{param} must be true or false.")


PHONE_NUMBER_ORIGINS = ("twilio", "hosted")


def phone_number_origin(value: str | None) -> str | None:
    """The ``Origin`` filter of the numbers list: absent means every origin."""
    if value is not None and value not in PHONE_NUMBER_ORIGINS:
        raise bad_request(ErrorCode.INVALID_PARAMETER, "Origin must be twilio or hosted.")
    return value


def sid_param(value: str, param: str, prefix: SidPrefix, code: ErrorCode) -> str:
    if not is_sid(value, prefix):
        raise bad_request(code, f"{param} must be a {prefix.value} SID: {value!r}")
    return value


def optional_sid_param(value: str, param: str, prefix: SidPrefix, code: ErrorCode) -> str | None:
    return None if value == "" else sid_param(value, param, prefix, code)


def ensure_under_limit(current_count: int, limit: int, code: ErrorCode, what: str) -> None:
    if current_count >= limit:
        raise bad_request(code, f"Maximum number of {what} ({limit}) reached.")


# --- accounts (spec 2.2) ---------------------------------------------------------------


def account_friendly_name(value: str) -> str:
    return bounded_text(
        value, "FriendlyName", ACCOUNT_FRIENDLY_NAME_MAX, ErrorCode.INVALID_PARAMETER
    )


def account_status(value: str) -> str:
    try:
        return AccountStatus(value.lower()).value
    except ValueError:
        raise bad_request(
            ErrorCode.INVALID_PARAMETER, "Status must be active, suspended or closed."
        ) from None


def ensure_status_may_change(is_subaccount: bool, current: str, new: str) -> None:
    """Only a subaccount's status changes, and a closed one stays closed (Twilio's 21477 and
    21479). A twin whose master account suspended itself would refuse its own token."""
    if not is_subaccount:
        raise bad_request(ErrorCode.PARENT_ACCOUNT_STATUS,
                          "Unable to update Status for parent accounts, status updates "
                          "restricted to subaccounts only")
    if current == AccountStatus.CLOSED.value and new != current:
        raise bad_request(ErrorCode.SUBACCOUNT_CLOSED,
                          "Unable to update Status for subaccount, subaccount has been closed.")


def ensure_may_create_subaccount(caller_is_subaccount: bool) -> None:
    """Only a top-level account creates sub-accounts; nesting is not offered by Twilio."""
    if caller_is_subaccount:
        raise TwilioError(403, ErrorCode.FORBIDDEN, "Sub-accounts cannot create sub-accounts.")


# --- API keys (spec 2.2) ----------------------------------------------------------------


def api_key_friendly_name(value: str) -> str:
    return bounded_text(value, "FriendlyName", API_KEY_FRIENDLY_NAME_MAX, ErrorCode.INVALID_PARAMETER)


# --- SIP domains (spec 3.1) --------------------------------------------------------------


def domain_name(raw: str, requesting_account_sid: str) -> str:
    """Check a DomainName's syntax and return it lower-cased (DNS names are case-blind)."""
    name = raw.strip().lower()
    if len(name) > MAX_DOMAIN_NAME_LENGTH or not name.endswith(DOMAIN_SUFFIX):
        raise _invalid_domain(raw)
    labels = name[: -len(DOMAIN_SUFFIX)].split(".")
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH or not _LABEL.fullmatch(label):
            raise _invalid_domain(raw)
    # {AccountSid}.sip.twilio.com is reserved for that account (spec 3.1).
    for label in labels:
        if _ACCOUNT_SID_LABEL.fullmatch(label) and label != requesting_account_sid.lower():
            raise _invalid_domain(raw)
    return name


def parent_domain_name(name: str) -> str | None:
    """``a.b.sip.twilio.com`` -> ``b.sip.twilio.com``; None for a top-level domain."""
    labels = name[: -len(DOMAIN_SUFFIX)].split(".")
    if len(labels) == 1:
        return None
    return ".".join(labels[1:]) + DOMAIN_SUFFIX


def _invalid_domain(raw: str) -> TwilioError:
    return bad_request(ErrorCode.INVALID_DOMAIN, f"Invalid Domain: {raw!r}")


def ensure_domain_name_available(
    name: str,
    requesting_account_sid: str,
    owner_account_sid: str | None,
    exists_in_this_region: bool,
) -> None:
    """A host name belongs to one account world-wide; that account may hold one copy per
    region (spec 6.3), so only another owner or a second copy in the same region clashes."""
    if exists_in_this_region or (
        owner_account_sid is not None and owner_account_sid != requesting_account_sid
    ):
        raise bad_request(ErrorCode.INVALID_DOMAIN, f"Domain {name} already exists.")


def ensure_subdomain_allowed(
    name: str,
    parent_owner_account_sid: str | None,
    requesting_account_sid: str,
    requesting_account_owner_sid: str,
) -> None:
    """A sub-domain needs its parent to exist in the region and belong to the caller or to
    the caller's parent account (spec 3.1)."""
    if parent_owner_account_sid is None or parent_owner_account_sid not in (
        requesting_account_sid,
        requesting_account_owner_sid,
    ):
        raise bad_request(
            ErrorCode.INVALID_DOMAIN,
            f"Invalid Domain: {name} is a sub-domain of a domain this account does not control.",
        )


def ensure_no_subdomains(name: str, subdomain_count: int) -> None:
    if subdomain_count:
        raise bad_request(
            ErrorCode.DOMAIN_HAS_SUBDOMAINS, f"Domain {name} still has sub-domains."
        )


def domain_friendly_name(value: str) -> str:
    return bounded_text(value, "FriendlyName", DOMAIN_FRIENDLY_NAME_MAX, ErrorCode.DOMAIN_VALIDATION)


def auth_type(call_list_kinds: Sequence[ListKind]) -> str:
    """``""``, ``IP_ACL``, ``CREDENTIAL_LIST`` or both, alphabetical, comma without space."""
    names = {
        ListKind.CREDENTIAL_LIST: "CREDENTIAL_LIST",
        ListKind.IP_ACCESS_CONTROL_LIST: "IP_ACL",
    }
    return ",".join(sorted({names[kind] for kind in call_list_kinds}))


def byoc_trunk_sid(value: str) -> str | None:
    """A domain's ``ByocTrunkSid``: ``""`` clears it; a malformed SID is 21300, the code
    Twilio documents for a BYOC trunk SID that is malformed or names no trunk of the
    account (spec 3.1)."""
    if value == "":
        return None
    if not is_sid(value, SidPrefix.BYOC_TRUNK):
        raise invalid_byoc_trunk(value)
    return value


def invalid_byoc_trunk(sid: str) -> TwilioError:
    return bad_request(ErrorCode.INVALID_BYOC_TRUNK,
                       f"ByocTrunkSid {sid!r} names no BYOC trunk of this account.")


def unknown_emergency_caller(sid: str) -> TwilioError:
    return bad_request(ErrorCode.DOMAIN_VALIDATION,
                       f"EmergencyCallerSid {sid!r} names no phone number of this account.")


def still_referenced(what: str, sid: str, field: str, domain_sids: Sequence[str]) -> TwilioError:
    """Deleting what a domain names, under ``referenced_delete: refuse`` (spec 3.1)."""
    named = ", ".join(domain_sids)
    return bad_request(ErrorCode.INVALID_PARAMETER,
                       f"{what} {sid} is the {field} of SIP domain {named}; clear it there first.")


# --- BYOC trunks and incoming phone numbers (spec 3.1) --------------------------------------

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def byoc_trunk_friendly_name(value: str) -> str | None:
    return bounded_text(value, "FriendlyName", BYOC_TRUNK_FRIENDLY_NAME_MAX,
                        ErrorCode.INVALID_PARAMETER) or None


def phone_number(value: str | None) -> str:
    """An E.164 number; the twin has no inventory, so the number asked for is the number."""
    if not value:
        raise bad_request(ErrorCode.INVALID_PHONE_NUMBER, "Required parameter PhoneNumber missing.")
    if not _E164.fullmatch(value):
        raise bad_request(ErrorCode.INVALID_PHONE_NUMBER,
                          f"PhoneNumber {value[:40]!r} is not an E.164 number (+ and up to 15 digits).")
    return value


def phone_number_unavailable(number: str) -> TwilioError:
    return bad_request(ErrorCode.PHONE_NUMBER_UNAVAILABLE, f"PhoneNumber {number} is not available.")


def phone_number_display_name(number: str) -> str:
    """Twilio's default FriendlyName: ``(415) 555-0100`` for a North American number."""
    if len(number) == 12 and number.startswith("+1"):
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def phone_number_friendly_name(value: str) -> str:
    return bounded_text(value, "FriendlyName", PHONE_NUMBER_FRIENDLY_NAME_MAX,
                        ErrorCode.INVALID_PARAMETER)


def emergency_status(value: str) -> str:
    if value not in ("Active", "Inactive"):
        raise bad_request(ErrorCode.INVALID_PARAMETER, "EmergencyStatus must be Active or Inactive.")
    return value


# --- mappings (spec 3.6, 3.7) -------------------------------------------------------------


def ensure_not_already_mapped(list_kind: ListKind, already_mapped: bool) -> None:
    if already_mapped:
        noun = "CredentialList" if list_kind is ListKind.CREDENTIAL_LIST else "IpAccessControlList"
        raise bad_request(
            ErrorCode.DOMAIN_VALIDATION, f"{noun} already associated with this domain"
        )


def ensure_mapped_list_exists(exists: bool, path: str) -> None:
    """Mapping a list the account does not have in this region: 404 (spec 9 default)."""
    if not exists:
        raise not_found(path)


def ensure_domain_list_capacity(current: int, limits: Limits) -> None:
    if current >= limits.credential_lists_per_domain:
        raise bad_request(
            ErrorCode.DOMAIN_VALIDATION,
            f"A domain can have at most {limits.credential_lists_per_domain} lists mapped.",
        )


# --- IP access control lists and addresses (spec 3.2, 3.3) -------------------------------


def ip_acl_friendly_name(value: str | None) -> str:
    code = ErrorCode.IP_ACL_VALIDATION
    return bounded_text(required(value, "FriendlyName", code), "FriendlyName",
                        IP_ACL_FRIENDLY_NAME_MAX, code)


def ensure_ip_acl_name_unique(friendly_name: str, taken: bool) -> None:
    if taken:
        raise bad_request(
            ErrorCode.IP_ACL_VALIDATION,
            f"An IpAccessControlList named {friendly_name!r} already exists.",
        )


def ensure_ip_acl_not_mapped(mapped_domain_count: int) -> None:
    if mapped_domain_count:
        raise bad_request(
            ErrorCode.IP_ACL_STILL_MAPPED,
            "IpAccessControlList is still mapped to a domain; remove the mapping first.",
        )


def ip_address_friendly_name(value: str) -> str:
    return bounded_text(value, "FriendlyName", IP_ADDRESS_FRIENDLY_NAME_MAX,
                        ErrorCode.IP_ADDRESS_VALIDATION)


def ipv4_address(value: str) -> str:
    """A full dotted-decimal IPv4 address: no wildcards, no IPv6 (spec 3.3)."""
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise bad_request(
            ErrorCode.IP_ADDRESS_VALIDATION, f"IpAddress must be an IPv4 address: {value!r}"
        ) from None


def cidr_prefix_length(value: str) -> int:
    """1..32; 0 would admit the whole Internet and is refused (spec 3.3, UNCONFIRMED)."""
    if not value.isdigit() or not 1 <= int(value) <= 32:
        raise bad_request(
            ErrorCode.IP_ADDRESS_VALIDATION, "CidrPrefixLength must be an integer from 1 to 32."
        )
    return int(value)


def ensure_ip_address_unique(address: str, taken: bool) -> None:
    if taken:
        raise bad_request(
            ErrorCode.IP_ACL_VALIDATION, f"IpAddress {address} already exists in this list."
        )


def network_of(address: str, prefix_length: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"{address}/{prefix_length}", strict=False)


# --- credential lists and credentials (spec 3.4, 3.5) ------------------------------------


def credential_list_friendly_name(value: str | None) -> str:
    code = ErrorCode.CREDENTIAL_LIST_VALIDATION
    return bounded_text(required(value, "FriendlyName", code), "FriendlyName",
                        CREDENTIAL_LIST_FRIENDLY_NAME_MAX, code)


def ensure_credential_list_name_unique(friendly_name: str, taken: bool) -> None:
    if taken:
        raise bad_request(
            ErrorCode.CREDENTIAL_LIST_VALIDATION,
            f"A CredentialList named {friendly_name!r} already exists.",
        )


def ensure_credential_list_not_mapped(mapped_domain_count: int) -> None:
    if mapped_domain_count:
        raise bad_request(
            ErrorCode.CREDENTIAL_LIST_STILL_MAPPED,
            "CredentialList is still mapped to a domain; remove the mapping first.",
        )


def username(value: str | None) -> str:
    code = ErrorCode.CREDENTIAL_VALIDATION
    name = required(value, "Username", code)
    if len(name) > USERNAME_MAX:
        raise bad_request(code, f"Username must be at most {USERNAME_MAX} characters long.")
    if not _USERNAME.fullmatch(name):
        raise bad_request(code, "Username contains characters not allowed in a SIP user part.")
    return name


def password(value: str | None) -> str:
    """At least 12 characters with a digit, an upper- and a lower-case letter (spec 3.5).

    The message never echoes the value: passwords must not leak into responses or logs.
    """
    code = ErrorCode.CREDENTIAL_VALIDATION
    secret = required(value, "Password", code)
    if not (
        len(secret) >= PASSWORD_MIN
        and any(ch.isdigit() for ch in secret)
        and any(ch.isupper() for ch in secret)
        and any(ch.islower() for ch in secret)
    ):
        raise bad_request(
            code,
            "Password must be at least 12 characters long and contain at least one digit, "
            "one upper-case and one lower-case letter.",
        )
    return secret


def ensure_username_unique(name: str, taken: bool) -> None:
    if taken:
        raise bad_request(
            ErrorCode.CREDENTIAL_VALIDATION, f"Username {name!r} already exists in this list."
        )


# --- inbound processing region routes (spec 3.9) ------------------------------------------


def voice_region(value: str, regions: Sequence[str]) -> str:
    region = value.lower()
    if region not in regions:
        raise bad_request(
            ErrorCode.INVALID_PARAMETER,
            f"VoiceRegion must be one of {', '.join(regions)}.",
        )
    return region


def route_friendly_name(value: str) -> str:
    return bounded_text(value, "FriendlyName", ROUTE_FRIENDLY_NAME_MAX,
                        ErrorCode.INVALID_PARAMETER)


def ensure_domain_exists_in_region(exists: bool, name: str, region: str) -> None:
    """Re-routing never copies a domain: it must already exist in the target region."""
    if not exists:
        raise TwilioError(
            404, ErrorCode.NOT_FOUND, f"Domain {name} does not exist in region {region}."
        )
