"""REGISTER (rule 12): registration disabled or without a list, too many bindings, a private
Contact without rport, an authorization name that is not the registering user."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ...model.findings import ERROR, WARNING, Finding
from ...sip.errors import SipParseError
from ...sip.message import Request
from ...sip.uri import SipUri
from ..engine import rule
from ..facts import CallFacts, private_address

REG = ("REGISTER",)
BINDING_LIMIT = 10


def _error_code(facts: CallFacts) -> int | None:
    for msg in reversed(facts.final_responses()):
        value = msg.header("X-Twilio-Error")
        if value:
            with contextlib.suppress(ValueError):
                return int(value.split(" ", 1)[0])
    return None


@rule("register-disabled", "register-no-credential-list", "register-too-many-bindings",
      "register-interval-too-brief", spec=12, methods=REG)
def register_refused(facts: CallFacts) -> Iterator[Finding]:
    code = _error_code(facts)
    line = facts.last_request.first_line if facts.last_request else ""
    name = facts.call.domain_name or "the domain"
    if code == 32210:
        yield Finding(
            "register-disabled", ERROR,
            f"The PBX tried to REGISTER, but registration is not enabled on {name}, so Twilio "
            "answers 403.",
            "Enable it on the domain (SipRegistration=true) and map a credential list under "
            "Auth/Registrations - or, for a PBX that only places calls, stop it registering "
            "(FreeSWITCH register=false; Asterisk: no registration object).",
            (line, "domain sip_registration: false"), 32210, 12)
    elif code == 32212:
        yield Finding(
            "register-no-credential-list", ERROR,
            f"Registration is enabled on {name} but no credential list is mapped for "
            "registrations (lists mapped for calls do not count).",
            "Map a credential list under Auth/Registrations/CredentialListMappings.",
            (line,), 32212, 12)
    elif facts.call.final_status == 423:
        final = facts.final_responses()[-1]
        yield Finding(
            "register-interval-too-brief", ERROR,
            "The REGISTER asked for a shorter expiry than Twilio accepts (423 Interval Too "
            "Brief); a PBX that does not retry with Min-Expires never registers.",
            f"Register with Expires of at least {final.header('Min-Expires') or 'Min-Expires'} "
            "seconds (and honour Min-Expires on a 423).",
            (line, final.header_line("Min-Expires") or "", facts.last_request.header_line(
                "Expires") or "" if facts.last_request else ""), None, 12)
    elif code == 32007:
        contacts = _contacts(facts)
        yield Finding(
            "register-too-many-bindings", ERROR,
            f"This address of record would have more than {BINDING_LIMIT} registered contacts, "
            "so Twilio refuses the REGISTER. Usually a NAT rebinding leaves stale contacts "
            "behind (a new source port each time).",
            "Unregister stale contacts (Contact: * with Expires: 0), register with a stable "
            "Contact (+sip.instance / reg-id, or a fixed port), shorten the expiry.",
            (line, *contacts[:5]), 32007, 12)


def _contacts(facts: CallFacts) -> list[str]:
    ok = next((m for m in reversed(facts.final_responses()) if m.status == 200), None)
    if ok is None or ok.parsed is None:
        return []
    return [f"Contact: {v}" for v in ok.parsed.headers.get_all("Contact")]


@rule("register-stale-bindings", spec=12, methods=REG)
def stale_bindings(facts: CallFacts) -> Iterator[Finding]:
    contacts = _contacts(facts)
    if len(contacts) < 5:
        return
    yield Finding(
        "register-stale-bindings", WARNING,
        f"The address of record now has {len(contacts)} contacts (Twilio allows "
        f"{BINDING_LIMIT}); at the limit new registrations fail with 32007.",
        "Register one stable Contact per device; remove old ones with Expires: 0.",
        tuple(contacts[:6]), 32007, 12)


@rule("register-private-contact", "register-username-mismatch", spec=12, methods=REG)
def register_shape(facts: CallFacts) -> Iterator[Finding]:
    msg = facts.last_request
    if msg is None or not isinstance(msg.parsed, Request):
        return
    request = msg.parsed
    with contextlib.suppress(SipParseError):
        for contact in request.contacts:
            uri = contact.address.uri if contact.address is not None else None
            if isinstance(uri, SipUri) and private_address(uri.host) and \
                    uri.host.strip("[]") != facts.call.source_ip:
                via = msg.header_line("Via") or ""
                if "rport" not in via.lower():
                    yield Finding(
                        "register-private-contact", WARNING,
                        f"The PBX registers the private Contact {uri.host} from "
                        f"{facts.call.source_ip} and its Via has no rport: calls to this user "
                        "will be sent to an address Twilio cannot reach.",
                        "Add rport (force_rport), rewrite the Contact to the public address "
                        "(Asterisk rewrite_contact=yes), or use an outbound proxy / keep-alives.",
                        (msg.header_line("Contact") or "", via), None, 12)
                break
    cred = msg.credentials()
    with contextlib.suppress(SipParseError):
        to_uri = request.to.uri
        to_user = to_uri.user if isinstance(to_uri, SipUri) else None
        if cred is not None and cred.username and to_user and cred.username != to_user:
            yield Finding(
                "register-username-mismatch", WARNING,
                f"The REGISTER authenticates as {cred.username!r} for the address of record "
                f"{to_user!r}: Twilio requires the authorization name to equal the username "
                "(32106).",
                "Make the auth user (authname / auth_username) the same as the registering "
                "user, i.e. the credential's username.",
                (msg.header_line("To") or "", msg.credentials_line() or ""), 32106, 12)
