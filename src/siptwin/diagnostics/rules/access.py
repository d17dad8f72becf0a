"""Who may call: the source address against the mapped IP ACLs (rule 1), nothing mapped."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from ...model.codes import Stage
from ...model.findings import ERROR, Finding
from ..engine import rule
from ..facts import CallFacts


def _nearest(source: str, networks: list[tuple[str, ipaddress.IPv4Network]]) -> tuple[str, str] | None:
    """The mapped entry sharing the longest prefix with ``source`` (the likely typo or NAT)."""
    try:
        address = int(ipaddress.ip_address(source))
    except ValueError:
        return None
    best: tuple[int, str, str] | None = None
    for acl_name, net in networks:
        common = 32 - (address ^ int(net.network_address)).bit_length()
        if best is None or common > best[0]:
            best = (common, acl_name, str(net))
    return (best[1], best[2]) if best else None


@rule("source-not-in-acl", spec=1)
def source_not_in_acl(facts: CallFacts) -> Iterator[Finding]:
    call = facts.call
    if call.decided_by != Stage.SOURCE_IP_IN_ACL:
        return
    domain = facts.domain
    evidence = [f"packet source: {facts.source}"]
    first = facts.first_request
    via = first.header_line("Via") if first else None
    if via and call.source_ip not in via:
        evidence.append(f"{via}  (Twilio ignores Via and Contact: only the packet's source counts)")
    networks = [(acl.friendly_name, net) for acl in (domain.call_acls if domain else ())
                for net in acl.networks]
    if domain is not None:
        for acl in domain.call_acls:
            entries = ", ".join(str(n) for n in acl.networks) or "(no entries)"
            evidence.append(f"mapped ACL {acl.friendly_name} ({acl.sid}) in {domain.region}: {entries}")
    nearest = _nearest(call.source_ip, networks)
    if nearest:
        evidence.append(f"nearest mapped entry: {nearest[1]} in {nearest[0]}")
    fixes = []
    elsewhere = facts.config.acls_containing(call.source_ip, call.account_sid) if facts.config else []
    for hit in elsewhere:
        where = ", ".join(hit.mapped_to) or "no domain"
        evidence.append(f"ACL {hit.friendly_name} ({hit.sid}) in region {hit.region} contains "
                        f"{call.source_ip} via {hit.entry}; mapped to {where}")
        if domain is not None and hit.region != domain.region:
            fixes.append(f"ACL {hit.friendly_name} lives in {hit.region}, but "
                         f"{domain.domain_name} is active in {domain.region}: create the list "
                         f"in {domain.region} (lists are per region) and map it there")
        elif domain is not None:
            fixes.append(f"map ACL {hit.friendly_name} ({hit.sid}) to {domain.domain_name} "
                         f"(Auth/Calls/IpAccessControlListMappings)")
    fixes.append(f"add the PBX's real public egress address {call.source_ip} (or its CIDR) to a "
                 "mapped ACL; behind NAT or with two uplinks that is not the address in Via or "
                 "Contact")
    heard = ("Twilio did not answer at all (the call was dropped silently)"
             if call.final_status is None else f"Twilio answered {call.final_status}")
    yield Finding(
        "source-not-in-acl", ERROR,
        f"{heard} because the packet came from {call.source_ip}, an address in no IP ACL mapped "
        f"to {call.domain_name} in its active region.",
        "; or ".join(fixes) + ".", tuple(evidence), 32201, 1)


@rule("no-auth-mapped", spec=1)
def no_auth_mapped(facts: CallFacts) -> Iterator[Finding]:
    call = facts.call
    if call.decided_by != Stage.CALL_AUTHENTICATION_MAPPED:
        return
    evidence = []
    domain = facts.domain
    if domain is not None and domain.registration_credential_lists:
        names = ", ".join(c.friendly_name for c in domain.registration_credential_lists)
        evidence.append(f"credential lists mapped for registrations only: {names} (these do not "
                        "authenticate calls)")
    if facts.config and call.account_sid and domain is not None:
        for kind, sid, name in facts.config.unmapped_lists(call.account_sid, domain.region):
            evidence.append(f"{kind} {name} ({sid}) exists in {domain.region} but is not mapped "
                            "for calls")
    yield Finding(
        "no-auth-mapped", ERROR,
        f"{call.domain_name} has neither an IP ACL nor a credential list mapped for calls, so "
        f"Twilio refuses every call to it ({call.final_status or 'dropped'}).",
        "Map an IP ACL (Auth/Calls/IpAccessControlListMappings) or a credential list "
        "(Auth/Calls/CredentialListMappings) to the domain, in its active region.",
        tuple(evidence) or (f"domain {call.domain_name} ({call.domain_sid})",), 32200, 1)
