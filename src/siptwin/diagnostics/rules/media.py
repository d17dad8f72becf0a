"""The SDP offer (rules 8 and 9): private c= addresses, codecs, DTMF, secure media/transport."""

from __future__ import annotations

from collections.abc import Iterator

from ...model.calls import TLS_FAILED_NOTE
from ...model.codes import Stage
from ...model.findings import ERROR, WARNING, Finding
from ...sip.sdp import SdpError, parse_sdp, summarize_offer
from ..engine import rule
from ..facts import CallFacts, Msg, private_address

G711 = ("PCMU", "PCMA")
SUPPORTED_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
NAT_FIX = ("Advertise the public address in SDP: Asterisk pjsip - external_media_address and "
           "external_signaling_address on the transport, rtp_symmetric=yes, direct_media=no; "
           "FreeSWITCH - ext-rtp-ip (and ext-sip-ip) in the profile; Kamailio - rtpengine or "
           "fix_nated_sdp(); disable the router's SIP ALG.")


def _offer(facts: CallFacts) -> tuple[Msg, bytes] | None:
    """The caller's SDP: in the last INVITE, else (late offer) in its ACK."""
    last = facts.last_request
    if last is not None and last.parsed is not None and last.parsed.body:
        return last, last.parsed.body
    for ack in facts.incoming("ACK"):
        if ack.parsed is not None and ack.parsed.body:
            return ack, ack.parsed.body
    return None


def _lines(body: bytes, *prefixes: str) -> list[str]:
    text = body.decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefixes)]


@rule("private-sdp-address", spec=8)
def private_sdp_address(facts: CallFacts) -> Iterator[Finding]:
    offer = _offer(facts)
    if offer is None:
        return
    msg, body = offer
    try:
        summary = summarize_offer(parse_sdp(body))
    except SdpError:
        return
    address = summary.connection_address
    if not private_address(address) or address == facts.call.source_ip:
        return
    c_lines = [line for line in _lines(body, "c=") if address and address in line]
    yield Finding(
        "private-sdp-address", WARNING,
        f"The SDP asks Twilio to send audio to {address}, a private address, while the "
        f"packet came from {facts.call.source_ip}: Twilio's media cannot reach it, so the "
        "caller hears nothing (one-way or no audio), though the call connects.",
        NAT_FIX,
        (*(c_lines or [f"c= {address}"]), f"packet source: {facts.source}"), None, 8)


@rule("bad-sdp", "no-g711-offered", "no-telephone-event", spec=8)
def codecs(facts: CallFacts) -> Iterator[Finding]:
    offer = _offer(facts)
    if offer is None:
        return
    msg, body = offer
    rejected_here = facts.call.decided_by == Stage.MEDIA_OFFER_ACCEPTABLE
    try:
        summary = summarize_offer(parse_sdp(body))
    except SdpError as err:
        yield Finding(
            "bad-sdp", ERROR if rejected_here else WARNING,
            f"Twilio cannot parse the SDP offer ({err}) and answers 488.",
            "Send an RFC 4566 SDP body: v=, o=, s=, c=, t= then m= lines, CRLF line ends, a "
            "Content-Length that matches.", (msg.first_line, str(err)), 32102, 8)
        return
    media = _lines(body, "m=audio", "a=rtpmap")
    if not any(c.upper() in G711 for c in summary.audio_codecs):
        yield Finding(
            "no-g711-offered", ERROR if rejected_here or facts.failed else WARNING,
            "The offer has no PCMU or PCMA (offered: "
            f"{', '.join(summary.audio_codecs) or 'nothing'}); Twilio's SIP interface speaks "
            "G.711 only and answers 488 Not Acceptable Here.",
            "Allow ulaw/alaw (PCMU/PCMA) on the trunk towards Twilio, first in the list "
            "(Asterisk: allow=!all,ulaw,alaw; FreeSWITCH: codec-prefs=PCMU,PCMA).",
            tuple(media), 32102, 8)
        return
    if not summary.telephone_event_offered:
        yield Finding(
            "no-telephone-event", WARNING,
            "The offer has no telephone-event payload: DTMF can only reach Twilio in-band, so "
            "<Gather> and IVR menus will not hear key presses (Twilio takes RFC 2833/4733 "
            "events).",
            "Offer telephone-event/8000 (Asterisk: dtmf_mode=rfc4733; FreeSWITCH: "
            "dtmf-type=rfc2833; Cisco: dtmf-relay rtp-nte).", tuple(media), None, 8)


@rule("secure-media-mismatch", spec=9)
def secure_media(facts: CallFacts) -> Iterator[Finding]:
    codes = facts.alert_codes()
    offer = _offer(facts)
    body = offer[1] if offer else b""
    evidence = _lines(body, "m=audio", "a=crypto")
    secure = facts.domain.secure if facts.domain is not None else None
    if 32207 in codes:
        yield Finding(
            "secure-media-mismatch", ERROR,
            f"The PBX offered SRTP but {facts.call.domain_name} does not have Secure Media "
            "enabled, so Twilio refuses the offer (488).",
            "Either offer plain RTP (RTP/AVP, no a=crypto) or enable Secure Media on the domain "
            "(Secure=true) and call over TLS.",
            (*evidence, f"domain secure: {secure}"), 32207, 9)
        return
    if 32208 in codes:
        yield Finding(
            "secure-media-mismatch", ERROR,
            f"{facts.call.domain_name} has Secure Media enabled, which makes SRTP mandatory, "
            "but the PBX offered plain RTP (488).",
            "Offer SDES-SRTP (RTP/SAVP with a=crypto AES_CM_128_HMAC_SHA1_80 or _32, no MKI) "
            "over TLS, or disable Secure Media on the domain.",
            (*evidence, f"domain secure: {secure}"), 32208, 9)
        return
    crypto = _lines(body, "a=crypto")
    bad = [line for line in crypto
           if not any(s in line for s in SUPPORTED_SUITES) or _has_mki(line)]
    if secure and crypto and bad:
        yield Finding(
            "secure-media-mismatch", WARNING,
            "Some crypto lines use suites or an MKI Twilio does not support "
            "(AES_CM_128_HMAC_SHA1_80/32 only, no MKI).",
            "Offer AES_CM_128_HMAC_SHA1_80 or _32 without an MKI.", tuple(bad), None, 9)


def _has_mki(crypto_line: str) -> bool:
    """``inline:KEY|2^20|1:4``: a ``n:m`` part after the key is an MKI."""
    key_params = crypto_line.split("inline:", 1)[-1].split(" ", 1)[0]
    return any(":" in part for part in key_params.split("|")[1:])


@rule("secure-transport-mismatch", spec=9)
def secure_transport(facts: CallFacts) -> Iterator[Finding]:
    if facts.call.decided_by != Stage.SECURE_DOMAIN_USES_TLS and 32209 not in facts.alert_codes():
        return
    yield Finding(
        "secure-transport-mismatch", ERROR,
        f"{facts.call.domain_name} has Secure Media enabled, which requires TLS signalling, but "
        f"the call arrived over {facts.call.transport.upper()}.",
        "Send to port 5061 over TLS (transport=tls in the trunk / outbound proxy; Asterisk: a "
        "transport-tls; FreeSWITCH: a TLS profile), with SRTP media; or disable Secure Media.",
        (f"transport: {facts.call.transport} from {facts.source}",
         f"Request-URI: {facts.request_uri}"), 32209, 9)


@rule("tls-on-plain-port", spec=9, methods=("TLS",))
def tls_on_plain_port(facts: CallFacts) -> Iterator[Finding]:
    call = facts.call
    if not call.request_uri.startswith("tcp:"):
        return
    port = call.request_uri.rsplit(":", 1)[-1]
    yield Finding(
        "tls-on-plain-port", ERROR,
        f"A TLS handshake reached the {call.region} edge on TCP port {port}, the plain SIP "
        "port: the PBX speaks TLS to a port that expects SIP in clear text, so the connection "
        "is closed and no INVITE is ever read - the call never reaches Twilio.",
        "Send TLS to port 5061 (Twilio's TLS port): port 5061 in the trunk or outbound proxy "
        "with transport=tls (Asterisk: a transport-tls on the endpoint; FreeSWITCH: the TLS "
        "profile's port; Kamailio: sips: or ;transport=tls with :5061); or keep port 5060 "
        "and use UDP/TCP.",
        (f"TCP connection from {facts.source} to {call.request_uri.removeprefix('tcp:')}: the "
         "first bytes are a TLS handshake record (0x16 0x03)",), None, 9)


# What a failed handshake's TLS error says went wrong, and what the client must change.
_TLS_CAUSES = (
    (("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE",
      "CERTIFICATE"),
     "the client refused the edge's certificate (its TLS alert says so)",
     "Make the client trust the chain the edge presents (Twilio: DigiCert roots; the twin: "
     "its own CA, which `siptwin ca` prints) and connect by the domain's host name, which the "
     "certificate names, not by address."),
    (("UNSUPPORTED_PROTOCOL", "WRONG_VERSION", "VERSION_TOO", "PROTOCOL_VERSION",
      "NO_PROTOCOLS_AVAILABLE"),
     "the client offered no TLS version the edge serves",
     "Allow TLS 1.2 on the client: Twilio's edge serves TLS 1.2 (a client limited to TLS 1.3 "
     "or to TLS 1.0/1.1 cannot connect; the twin serves TLS 1.3 only with the setting tls13)."),
    (("NO_SHARED_CIPHER", "NO_CIPHERS", "HANDSHAKE_FAILURE", "INSUFFICIENT_SECURITY"),
     "the client offered none of the edge's cipher suites",
     "Enable at least one of the edge's ten TLS 1.2 suites on the client, for example "
     "ECDHE-RSA-AES128-GCM-SHA256 or ECDHE-RSA-AES256-GCM-SHA384 (spec §4.7): the edge's "
     "certificate is RSA, so ECDSA-only suites cannot work."),
    (("EOF", "RESET", "CLOSED_BY_THE_CLIENT"),
     "the client closed the connection in the middle of the handshake without saying why",
     "Read the client's TLS log: most clients that hang up at this point did not trust the "
     "edge's certificate (trust Twilio's DigiCert roots, or the twin's CA from `siptwin ca`, "
     "and connect by the domain's host name) or found no common version or suite (offer TLS "
     "1.2 with ECDHE-RSA-AES128-GCM-SHA256)."),
)


def tls_failure_cause(reason: str) -> tuple[str, str]:
    """Why a handshake failed with this TLS error, and what to fix (the last, general
    answer when the error is none of the known ones)."""
    upper = reason.upper().replace(" ", "_")
    for words, why, fix in _TLS_CAUSES:
        if any(word in upper for word in words):
            return why, fix
    return ("the handshake did not complete",
            "Check the client's TLS settings against the edge's: TLS 1.2, one of the ten RSA "
            "suites of spec §4.7, the edge's certificate chain trusted, the domain's host name "
            "as the server name.")


@rule("tls-handshake-failed", spec=9, methods=("TLS",))
def tls_handshake_failed(facts: CallFacts) -> Iterator[Finding]:
    note = facts.note(TLS_FAILED_NOTE)
    if note is None:
        return
    call = facts.call
    reason = note.removeprefix(TLS_FAILED_NOTE).strip() or "unknown"
    why, fix = tls_failure_cause(reason)
    yield Finding(
        "tls-handshake-failed", ERROR,
        f"A TLS connection to the {call.region} edge ({call.request_uri.removeprefix('tls:')}) "
        f"failed during its handshake ({reason}): {why}, so no INVITE was ever read and the "
        "call never reached Twilio.",
        fix,
        (f"TLS from {facts.source}: {reason}",), None, 9)
