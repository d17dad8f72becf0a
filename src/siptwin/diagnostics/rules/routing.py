"""The Request-URI host (rule 6): an IP address, a trunk's *.pstn name, an unknown domain or
an unknown edge label - Twilio finds the SIP Domain by that host and nothing else."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from ...model.codes import Stage
from ...model.findings import ERROR, Finding
from ...sip.errors import SipParseError
from ...sip.message import Request
from ...sip.uri import SipUri
from ..engine import rule
from ..facts import CallFacts, is_ip

BOTH = ("INVITE", "REGISTER")
SIP_SUFFIX = ".sip.twilio.com"


def _host(facts: CallFacts) -> tuple[str | None, str]:
    """The host Twilio looked the domain up by, and what carried it."""
    if facts.method == "REGISTER":
        msg = facts.last_request
        if msg is not None and isinstance(msg.parsed, Request):
            try:
                uri = msg.parsed.to.uri
            except SipParseError:
                return None, "To"
            return (uri.host if isinstance(uri, SipUri) else None), "To"
        return None, "To"
    return facts.request_host, "Request-URI"


def _not_found(facts: CallFacts) -> bool:
    if facts.call.decided_by == Stage.DOMAIN_EXISTS:
        return True
    # A REGISTER refused for its domain carries no code (no account to log to): the record
    # names no domain although the registrar answered it.
    call = facts.call
    return (call.method == "REGISTER" and call.final_status is not None
            and call.final_status >= 400 and not call.domain_sid)


def _candidates(facts: CallFacts) -> list[str]:
    """Host names of existing domains the PBX probably meant (To header, similar names)."""
    names = facts.config.domain_names() if facts.config else []
    out: list[str] = []
    msg = facts.last_request
    if msg is not None and isinstance(msg.parsed, Request):
        for header in ("To", "From"):
            try:
                uri = (msg.parsed.to if header == "To" else msg.parsed.from_).uri
            except SipParseError:
                continue
            if isinstance(uri, SipUri) and facts.catalogue is not None:
                match = facts.catalogue.match_host(uri.host)
                if match is not None and match.domain_name in names and uri.host not in out:
                    out.append(uri.host.lower())
    return out


def _example(facts: CallFacts, host: str) -> str:
    try:
        uri = facts.request_uri
        user = uri.split(":", 1)[1].split("@", 1)[0] if "@" in uri else "1000"
    except IndexError:
        user = "1000"
    return f"sip:{user}@{host}"


@rule("request-uri-is-ip", "trunk-host", "unknown-edge-label", "unknown-domain", spec=6,
      methods=BOTH)
def request_uri_host(facts: CallFacts) -> Iterator[Finding]:
    if not _not_found(facts):
        return
    host, carrier = _host(facts)
    line = facts.last_request.first_line if facts.last_request else facts.request_uri
    if facts.method == "REGISTER" and facts.last_request is not None:
        line = facts.last_request.header_line("To") or line
    candidates = _candidates(facts)
    meant = candidates[0] if candidates else "yourdomain.sip.twilio.com"
    route_fix = (f"Keep the FQDN in the {carrier} ({_example(facts, meant)}) and send the "
                 "packet to Twilio's address with an outbound proxy (Asterisk: outbound_proxy; "
                 "FreeSWITCH: proxy=; Kamailio: set $du, never $ru).")
    if host is None:
        return
    if is_ip(host):
        evidence = [line] + ([f"the To header names {candidates[0]}"] if candidates else [])
        yield Finding(
            "request-uri-is-ip", ERROR,
            f"The {carrier} host is the IP address {host}, not the SIP Domain name: Twilio "
            "identifies the domain by that host, so it cannot find one and refuses the call. "
            "Typically a proxy resolved the FQDN and rewrote the Request-URI with the address.",
            route_fix, tuple(evidence), None, 6)
        return
    lowered = host.lower().rstrip(".")
    if lowered.endswith(".pstn.twilio.com") or ".pstn." in lowered and lowered.endswith("twilio.com"):
        yield Finding(
            "trunk-host", ERROR,
            f"{host} is an Elastic SIP Trunking termination name (*.pstn.twilio.com), not a SIP "
            "Domain: the SIP Domain service does not know it.",
            f"Send calls meant for the SIP Domain to its own host ({meant}); use the .pstn name "
            "only with a trunk (and its own IP ACL / credentials on the trunk).",
            (line,), None, 6)
        return
    match = facts.catalogue.match_host(host) if facts.catalogue is not None else None
    if (match is not None and match.edge_label is not None and match.region is None) or \
            facts.note("unknown edge label"):
        labels = sorted({label for r in facts.catalogue for label in r.labels}) if facts.catalogue else []
        yield Finding(
            "unknown-edge-label", ERROR,
            f"{host} names an edge or region label Twilio does not have, so no SIP Domain "
            "matches.",
            "Use an existing edge label (" + ", ".join(labels[:12]) + ") or the plain "
            f"{match.domain_name if match else 'label.sip.twilio.com'} form.",
            (line,), None, 6)
        return
    evidence = [line]
    fix = "Create the SIP Domain, or correct the host name in the PBX's trunk / dial string."
    if match is not None and facts.config is not None:
        copies = facts.config.domain_copies(match.domain_name)
        route = facts.config.route_region(match.domain_name)
        if copies:
            evidence.append("copies of the domain: " + ", ".join(f"{r} ({s})" for r, s in copies)
                            + f"; active region: {route or 'none'}")
            fix = (f"The domain exists in {', '.join(r for r, _ in copies)} but is not active "
                   f"where it is looked up; point its route (v2/SipDomains/{match.domain_name} "
                   "VoiceRegion) at the region holding its configuration.")
        else:
            close = difflib.get_close_matches(match.domain_name, facts.config.domain_names(), 3, 0.8)
            if close:
                evidence.append("similar existing domains: " + ", ".join(close))
                fix = f"Did you mean {close[0]}? Correct the host name on the PBX."
    elif match is None:
        evidence.append(f"{host} is not a *.sip.twilio.com name")
        fix = ("Send the call to the SIP Domain's own host name (label.sip.twilio.com, or a "
               "localized label.sip.<edge>.twilio.com), not a host of your own.")
    yield Finding(
        "unknown-domain", ERROR,
        f"No SIP Domain is called {match.domain_name if match else host}, so Twilio refuses the "
        "call.", fix, tuple(evidence), None, 6)
