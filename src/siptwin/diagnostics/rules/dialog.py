"""The dialog after 200 OK (rule 11): the ACK that never reaches Twilio's dialog - the
32-second drop - and a Contact Twilio cannot reach."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ...model.calls import BYE_UNDELIVERED_NOTE
from ...model.findings import ERROR, WARNING, Finding
from ...sip.errors import SipParseError
from ...sip.message import Request, Response
from ...sip.uri import SipUri, parse_uri
from ..engine import rule
from ..facts import CallFacts, Msg, private_address

ACK_FIX = ("Send the ACK (and BYE) to the Contact of Twilio's 200 OK, through its Record-Route "
           "set, exactly as received: do not reuse the INVITE's Request-URI, do not rewrite "
           "Twilio's Contact in an SBC, and disable the router's SIP ALG (Kamailio: "
           "loose_route() for in-dialog requests; Asterisk/FreeSWITCH do this unless a "
           "topology-hiding or NAT option rewrites it).")


def _normal(uri: str) -> str:
    with contextlib.suppress(SipParseError):
        parsed = parse_uri(uri.strip().strip("<>"))
        if isinstance(parsed, SipUri):
            port = parsed.port or 5060
            return f"{parsed.scheme}:{parsed.user + '@' if parsed.user else ''}{parsed.host.lower()}:{port}"
    return uri.strip().lower()


def _ok(facts: CallFacts) -> Msg | None:
    return next((m for m in facts.outgoing_responses("INVITE") if m.status == 200), None)


def _acks_for(facts: CallFacts, ok: Msg) -> list[Msg]:
    assert isinstance(ok.parsed, Response)
    try:
        number = ok.parsed.cseq.number
    except (SipParseError, ValueError):
        return []
    out = []
    for ack in facts.incoming("ACK"):
        with contextlib.suppress(SipParseError, ValueError):
            if isinstance(ack.parsed, Request) and ack.parsed.cseq.number == number:
                out.append(ack)
    return out


def _contact(msg: Msg) -> str | None:
    with contextlib.suppress(SipParseError):
        contacts = msg.parsed.contacts if msg.parsed is not None else []
        if contacts and contacts[0].address is not None:
            return str(contacts[0].address.uri)
    return None


@rule("ack-not-received", "ack-wrong-request-uri", "record-route-ignored", spec=11)
def ack(facts: CallFacts) -> Iterator[Finding]:
    ok = _ok(facts)
    timeout = facts.fidelity.get("ack_timeout", 32.0)
    acks = _acks_for(facts, ok) if ok is not None else []
    contact = _contact(ok) if ok is not None else None
    wrong = [a for a in acks if contact and isinstance(a.parsed, Request)
             and _normal(a.parsed.uri_text) != _normal(contact)]
    record_route = ok.header_line("Record-Route") if ok is not None else None
    unrouted = [a for a in acks if record_route and a.header("Route") is None]
    if 32022 in facts.alert_codes():
        evidence = [f"200 OK sent with Contact: {contact}" if contact else "200 OK sent"]
        if acks:
            evidence += [f"ACK received: {a.first_line}" for a in acks[:2]]
        else:
            evidence.append("no ACK for the 200 OK arrived at Twilio")
        evidence.append(f"Twilio sent BYE {timeout:g} s after the 200 OK (X-Twilio error 32022)")
        why = ("its ACK was addressed to the INVITE's Request-URI instead of Twilio's Contact"
               if wrong else "the ACK never reached Twilio's dialog")
        yield Finding(
            "ack-not-received", ERROR,
            f"The call was answered but dropped after {timeout:g} seconds because {why}: "
            "Twilio retransmits the 200 OK, gives up and hangs up (the classic "
            "'calls drop after 30 s').", ACK_FIX + " Also make sure Twilio can reach the "
            "PBX's Contact.", tuple(evidence), 32022, 11)
    if wrong:
        assert isinstance(wrong[0].parsed, Request)
        yield Finding(
            "ack-wrong-request-uri", WARNING if 32022 not in facts.alert_codes() else ERROR,
            f"The ACK went to {wrong[0].parsed.uri_text}, not to the Contact of Twilio's 200 "
            f"OK ({contact}). The twin matched it by Call-ID, but Twilio's edge routes in-dialog "
            "requests by that Contact: in production the ACK is lost and the call drops after "
            "about 30 s (32022).", ACK_FIX,
            (f"200 OK: Contact: <{contact}>", f"ACK: {wrong[0].first_line}"), 32022, 11)
    if unrouted and record_route:
        yield Finding(
            "record-route-ignored", WARNING,
            "Twilio's 200 OK carried a Record-Route, but the ACK has no Route header: the PBX "
            "ignored the route set, so in production the ACK bypasses Twilio's proxy and the "
            "call drops after about 30 s.", ACK_FIX,
            (record_route, f"ACK: {unrouted[0].first_line} (no Route)"), 32022, 11)


@rule("private-contact", spec=11)
def private_contact(facts: CallFacts) -> Iterator[Finding]:
    msg = facts.last_request
    if msg is None:
        return
    contact = _contact(msg)
    if contact is None:
        return
    with contextlib.suppress(SipParseError):
        uri = parse_uri(contact)
        if isinstance(uri, SipUri) and private_address(uri.host) and \
                uri.host.strip("[]") != facts.call.source_ip:
            yield Finding(
                "private-contact", WARNING,
                f"The INVITE's Contact is the private address {uri.host}, while the packet came "
                f"from {facts.call.source_ip}: Twilio's BYE and re-INVITEs cannot reach the PBX, "
                "so hang-ups from the Twilio side are lost.",
                "Advertise the public address in Contact (Asterisk: external_signaling_address, "
                "rewrite_contact=yes, force_rport=yes; FreeSWITCH: ext-sip-ip; Kamailio: "
                "fix_nated_contact()), or keep a NAT binding with rport.",
                (msg.header_line("Contact") or contact, f"packet source: {facts.source}"),
                None, 11)


@rule("bye-not-delivered", spec=11)
def bye_not_delivered(facts: CallFacts) -> Iterator[Finding]:
    note = facts.note(BYE_UNDELIVERED_NOTE)
    if note is None:
        return
    if "the dialled party" in note:
        yield Finding(
            "bye-not-delivered", WARNING,
            "Twilio ended the <Dial> leg, but its BYE to the dialled device got no answer: the "
            "device was unreachable by then (switched off, its network changed, its TCP/TLS "
            "connection gone), so it may still show the call as up.",
            "Keep a registered device reachable at the Contact it registered for as long as "
            "the registration lasts: keep-alives (CRLF or OPTIONS) for its NAT binding and its "
            "TCP/TLS connection, and unregister (Expires: 0) before it goes away; register "
            "again when its address changes.",
            (note,), None, 11)
        return
    yield Finding(
        "bye-not-delivered", WARNING,
        "Twilio hung up, but its BYE got no answer: the PBX or phone never received it (or "
        "never answered it), so on that side the call may still be up - a hung channel that "
        "holds a line or licence until its own timers end it.",
        "Keep the address in your Contact (and Record-Route) reachable for the whole call: "
        "keep NAT and firewall pinholes open with keep-alives (OPTIONS or CRLF), do not close "
        "the TCP/TLS connection the call came on, and disable SIP ALGs that rewrite Contact; "
        "set a session timer or RTP timeout on the PBX as a safety net.",
        (note,), None, 11)
