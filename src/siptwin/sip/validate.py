"""Request and response checks of a UAS (RFC 3261 §8.2, §16.3 for Max-Forwards).

``check_request`` returns the :class:`Rejection` a UAS should answer with, or None when the
request may be processed. Nothing here raises: every defect becomes a status code and a reason
phrase naming it, so the sender learns what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SipParseError
from .message import Request, Response, decode_uas_views, make_response
from .uri import SipUri

# Methods of RFC 3261 and its common extensions: a known method that a UAS does not allow
# gets 405, an unknown one 501 (both with Allow).
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "PRACK", "UPDATE",
        "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "PUBLISH",
    }
)
_ACCEPT_SDP = {"application/sdp", "application/*", "*/*"}


@dataclass(frozen=True)
class UasPolicy:
    """What a UAS implements; the region node and the test responders each build one."""

    allowed_methods: frozenset[str] = frozenset(
        {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO"}
    )
    uri_schemes: frozenset[str] = frozenset({"sip", "sips"})
    extensions: frozenset[str] = frozenset()
    body_types: frozenset[str] = frozenset({"application/sdp"})
    # An endpoint processes Max-Forwards 0 normally; Twilio's edge rejects it (spec §4.2).
    reject_exhausted_max_forwards: bool = False
    # The Allow header's methods, when it should list something other than what is processed
    # (Twilio's edge is modelled with the list Twilio advertises, spec §4.8).
    advertised_methods: tuple[str, ...] = ()
    allow_header: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if self.advertised_methods:
            object.__setattr__(self, "allow_header", ", ".join(self.advertised_methods))
            return
        order = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO"]
        methods = [m for m in order if m in self.allowed_methods]
        methods += sorted(self.allowed_methods - set(order))
        object.__setattr__(self, "allow_header", ", ".join(methods))


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()

    def response_to(self, request: Request, to_tag: str | None = None) -> Response:
        return make_response(request, self.status, self.reason, to_tag=to_tag, extra=self.headers)


def check_request(request: Request, policy: UasPolicy) -> Rejection | None:
    if request.version != "SIP/2.0":
        return Rejection(505, "Version Not Supported")
    try:
        return _check(request, policy)
    except SipParseError as err:
        return Rejection(err.status, err.reason)


def _check(request: Request, policy: UasPolicy) -> Rejection | None:
    try:
        uri = request.uri
    except SipParseError as err:
        return Rejection(400, f"Malformed Request-URI: {err.reason}")
    if uri.scheme not in policy.uri_schemes:
        return Rejection(416, "Unsupported URI Scheme")
    if isinstance(uri, SipUri) and uri.headers:
        return Rejection(400, "Request-URI must not carry headers")

    # Decode every header the UAS relies on (a Via first: none raises "Missing Via
    # header"); a defect raises and becomes a 400. The views of the single-valued headers
    # (From, To, Call-ID, CSeq, Max-Forwards, Content-Type) raise "Multiple ... headers"
    # themselves when a header is repeated.
    views = decode_uas_views(request)
    max_forwards = views["max-forwards"]

    method = request.method
    if method not in KNOWN_METHODS:
        return Rejection(501, "Not Implemented", (("Allow", policy.allow_header),))
    if method not in policy.allowed_methods:
        return Rejection(405, "Method Not Allowed", (("Allow", policy.allow_header),))
    if views["cseq"].method != method:
        return Rejection(400, "CSeq method does not match the request method")

    required = views["tags:require"]
    if required and method not in ("ACK", "CANCEL"):  # (no comprehension for the usual none)
        unsupported = [tag for tag in required if tag not in policy.extensions]
        if unsupported:
            return Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unsupported)),))
    if policy.reject_exhausted_max_forwards and max_forwards == 0:
        return Rejection(483, "Too Many Hops")

    if method == "REGISTER":
        if request.to.uri.scheme not in ("sip", "sips"):
            return Rejection(400, "To of a REGISTER must be a SIP or SIPS address-of-record")
        for contact in request.contacts:
            _ = contact.expires
    if request.body and method in ("INVITE", "ACK", "OPTIONS", "INFO", "BYE", "UPDATE", "PRACK"):
        rejection = _check_body(request, policy)
        if rejection is not None:
            return rejection
    if method == "INVITE":
        accept = request.accept
        if accept is not None and not _ACCEPT_SDP.intersection(accept):
            return Rejection(
                406,
                "Not Acceptable",
                (("Warning", '399 siptwin "Accept excludes application/sdp"'),),
            )
    return None


def _check_body(request: Request, policy: UasPolicy) -> Rejection | None:
    if request.method == "INFO":
        return None  # INFO carries application payloads (DTMF relay); its handler decides
    content_type = request.content_type
    if content_type is None:
        return Rejection(400, "Body without Content-Type")
    if content_type.type not in policy.body_types:
        return Rejection(415, "Unsupported Media Type",
                         (("Accept", ", ".join(sorted(policy.body_types))),))
    encodings = request.headers.by_key("content-encoding")
    encoding = encodings[0][2] if encodings else None
    if encoding and encoding.strip().lower() != "identity":
        return Rejection(415, "Unsupported Content-Encoding", (("Accept-Encoding", "identity"),))
    return None


def check_response(response: Response) -> str | None:
    """Why a received response must be discarded (§18.1.2), or None when it is usable."""
    if response.version != "SIP/2.0":
        return "unsupported SIP version"
    try:
        vias = response.vias
        if not vias:
            return "no Via"
        _ = response.cseq, response.call_id, response.from_, response.to
    except SipParseError as err:
        return err.reason
    if len(vias) > 1 and response.top_via:
        # A response carrying more than one Via was not meant for a UAC (§8.1.3.3).
        return "more than one Via"
    return None
