"""From received octets to "process this message", "answer with this error" or "drop".

This is the part of a UAS that every transport shares: frame and parse, then validate. It never
raises; the outcome says what to do and why, so a transport adapter stays a thin loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SipParseError
from .frozen import quicken
from .message import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Request,
    Response,
    make_response,
    parse_datagram,
    parse_stream_message,
)
from .validate import UasPolicy, check_request, check_response


@dataclass(frozen=True, slots=True)
class Admission:
    """Exactly one of: ``message`` (process it), ``reply`` (send it), ``dropped`` (a reason)."""

    message: Request | Response | None = None
    reply: Response | None = None
    dropped: str | None = None


quicken(Admission)


def admit(data: bytes, policy: UasPolicy, *, datagram: bool = True,
          max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Admission:
    try:
        message = parse_datagram(data, max_size) if datagram else parse_stream_message(data)
    except SipParseError as err:
        reply = refusal(err)
        if reply is not None:
            return Admission(reply=reply)
        return Admission(dropped=f"unparsable message: {err.reason}")
    if isinstance(message, Response):
        why = check_response(message)
        return Admission(dropped=f"response discarded: {why}") if why else Admission(message)
    rejection = check_request(message, policy)
    if rejection is None:
        return Admission(message)
    if message.method == "ACK":
        # An ACK is never answered (§17.2.1); a broken one is simply discarded.
        return Admission(dropped=f"malformed ACK: {rejection.reason}")
    return Admission(reply=rejection.response_to(message))



def refusal(err: SipParseError) -> Response | None:
    """The answer to a message that could not be parsed, when enough of it was readable to
    address one (never to an ACK, RFC 3261 §17.2.1)."""
    partial = err.partial
    if isinstance(partial, Request) and partial.method != "ACK" and partial.headers.get("Via"):
        return make_response(partial, err.status, err.reason)
    return None
