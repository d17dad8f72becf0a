"""The responses a Twilio edge sends: its Server header, its To tags, its Record-Route copy.

Used by the node for INVITE, BYE, OPTIONS ... and by the registrar for REGISTER, so both sound
like the same edge.
"""

from __future__ import annotations

from ..sip.entropy import random_bytes
from ..sip.message import Request, Response, make_response


def twilio_to_tag() -> str:
    """The shape observed on Twilio's responses: ``<8 digits>_<8 hex>_<uuid>``.

    One draw of the system's random bytes (sip/entropy.py) for all three parts (RFC 3261 §19.3 asks for
    cryptographically random tags); the last part is a version 4 UUID."""
    raw = bytearray(random_bytes(24))
    number = 10**7 + int.from_bytes(raw[:4], "big") % (9 * 10**7)
    # The UUID's version (4) and RFC 4122 variant bits set in place, as uuid.UUID(bytes=...,
    # version=4) would, without building the object.
    raw[14] = raw[14] & 0x0F | 0x40
    raw[16] = raw[16] & 0x3F | 0x80
    u = raw[8:].hex()
    return f"{number}_{raw[4:8].hex()}_{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"


def twilio_response(request: Request, status: int, reason: str | None = None, *,
                    to_tag: str | None = None, extra: tuple[tuple[str, str], ...] = (),
                    body: bytes = b"") -> Response:
    if to_tag is None and status > 100 and not _to_tagged(request):
        to_tag = twilio_to_tag()  # make_response adds it only to a To without a tag
    server = "Twilio Gateway" if status == 100 else "Twilio"
    headers = (*extra, ("Server", server))
    if request.method == "INVITE" and 100 < status < 300:
        # RFC 3261 §12.1.1: a dialog-creating response copies the Record-Route set, so an
        # SBC in front of the caller (Kamailio with record_route()) stays on ACK and BYE.
        routes = request.headers.by_key("record-route")
        if routes:
            headers = (*(("Record-Route", entry[2]) for entry in routes), *headers)
    if body:
        headers = (*headers, ("Content-Type", "application/sdp"))
    return make_response(request, status, reason, to_tag=to_tag, extra=headers, body=body)


def _to_tagged(request: Request) -> bool:
    """Every To of the request carries a tag already (an in-dialog request): make_response
    would add none, so no tag need be made."""
    for entry in request.headers.by_key("to"):  # noqa: SIM110 (no generator for the one To)
        if ";tag=" not in entry[2].replace(" ", ""):
            return False
    return True
