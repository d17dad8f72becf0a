"""Number formats (rule 7): a dialled number or caller ID that is not E.164."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...model.findings import ERROR, WARNING, Finding
from ...sip.errors import SipParseError
from ...sip.uri import SipUri, parse_uri
from ..engine import rule
from ..facts import CallFacts

_PHONEISH = re.compile(r"\+?[0-9()\-. ]+")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _user(uri_text: str) -> str | None:
    try:
        uri = parse_uri(uri_text)
    except SipParseError:
        return None
    if not isinstance(uri, SipUri) or uri.user is None:
        return None
    return uri.user.split(";", 1)[0]


def normalised(user: str) -> str:
    """A best guess at the E.164 form (the country code is assumed for national numbers)."""
    digits = re.sub(r"[^0-9]", "", user)
    if user.startswith("+"):
        return "+" + digits
    if digits.startswith("011"):
        return "+" + digits[3:]
    if digits.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 10 and digits[0] in "23456789":
        return "+1" + digits  # NANP without the 1
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    if digits.startswith("0"):
        return "+<country code>" + digits[1:]
    return "+" + digits


def _check(user: str | None) -> str | None:
    """Why ``user`` is a phone number that is not E.164, or None."""
    if user is None or not _PHONEISH.fullmatch(user):
        return None
    digits = re.sub(r"[^0-9]", "", user)
    if len(digits) < 7:
        return None  # an extension, not a phone number
    if E164.fullmatch(user):
        return None
    if not user.startswith("+"):
        return "has no leading +"
    return "contains formatting characters" if re.search(r"[^+0-9]", user) else "is not E.164"


@rule("non-e164-number", spec=7)
def non_e164_number(facts: CallFacts) -> Iterator[Finding]:
    call = facts.call
    problems, evidence, codes = [], [], []
    to_user = _user(facts.request_uri)
    why = _check(to_user)
    if why and to_user:
        problems.append(f"the dialled number {to_user} {why} (E.164: {normalised(to_user)})")
        evidence.append(f"Request-URI: {facts.request_uri}")
        codes.append(13223)
    from_user = _user(call.from_uri)
    why = _check(from_user)
    if why and from_user:
        problems.append(f"the caller ID {from_user} {why} (E.164: {normalised(from_user)})")
        evidence.append(f"From: {call.from_uri}")
        codes.append(13214)
    if not problems:
        return
    failed = any(code in facts.alert_codes() for code in (13223, 13224, 13214))
    yield Finding(
        "non-e164-number", ERROR if failed else WARNING,
        "Number format: " + "; ".join(problems) + ". The webhook's To/From arrive as full sip: "
        "URIs; passed to <Dial><Number> or as callerId they make Twilio reject the dial "
        "(13223/13224 for the number, 13214 for the caller ID).",
        "Send numbers in E.164 from the PBX (a dial-plan rewrite: strip the trunk prefix, add "
        "+ and the country code), and in the app extract the user part of the sip: URI before "
        "dialling; the caller ID must be E.164 and a number you own or have verified.",
        tuple(evidence), codes[0], 7)
