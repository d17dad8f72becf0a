"""Twilio SID formats: two upper-case letters followed by 32 lower-case hex digits."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from enum import StrEnum

from ..sip.entropy import random_hex


class SidPrefix(StrEnum):
    ACCOUNT = "AC"
    DOMAIN = "SD"
    IP_ACCESS_CONTROL_LIST = "AL"
    IP_ADDRESS = "IP"
    CREDENTIAL_LIST = "CL"
    CREDENTIAL = "CR"
    BYOC_TRUNK = "BY"
    PHONE_NUMBER = "PN"
    DOMAIN_ROUTE = "QQ"
    REQUEST = "RQ"
    CALL = "CA"
    NOTIFICATION = "NO"
    API_KEY = "SK"
    CONNECTION_POLICY = "NY"  # a BYOC trunk's connection_policy_sid (not modelled)
    ADDRESS = "AD"  # a phone number's emergency_address_sid (not modelled)


_SID_BODY = re.compile(r"[0-9a-fA-F]{32}")


def new_sid(prefix: SidPrefix) -> str:
    return f"{prefix.value}{random_hex(16)}"


def new_call_sid() -> str:
    return new_sid(SidPrefix.CALL)


def stable_sid(prefix: SidPrefix, seed: str) -> str:
    """A SID derived from ``seed``: the same resource gets the same SID on every read."""
    return prefix.value + hashlib.sha256(seed.encode()).hexdigest()[:32]


def new_auth_token() -> str:
    return secrets.token_hex(16)


def new_api_key_secret() -> str:
    """32 letters and digits, the alphabet and length of Twilio's API key secrets."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def is_sid(value: str, prefix: SidPrefix) -> bool:
    """True when ``value`` has the exact shape Twilio documents: ``^XX[0-9a-fA-F]{32}$``."""
    return (
        len(value) == 34 and value[:2] == prefix.value and _SID_BODY.fullmatch(value[2:]) is not None
    )


def is_call_sid(value: str) -> bool:
    return is_sid(value, SidPrefix.CALL)
