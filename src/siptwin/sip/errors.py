"""SipParseError: what the SIP core raises for a message, header or URI it cannot accept.

It is not the only one: :class:`~siptwin.sip.digest.DigestSyntaxError` and
:class:`~siptwin.sip.sdp.SdpError` are separate ``ValueError`` subclasses, so a caller that
parses credentials or SDP as well catches ``(SipParseError, ValueError)``.
"""

from __future__ import annotations

from typing import Any


class SipParseError(ValueError):
    """A message, header or URI that cannot be accepted.

    ``status`` is the response a UAS should send for it (400 unless the defect has a more
    specific answer, such as 505 for an unknown SIP version) and ``reason`` is a reason phrase
    naming the defect, so the peer learns what was wrong.
    """

    def __init__(self, reason: str, status: int = 400, partial: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # When framing failed but the header fields could be read, a Request carrying them, so
        # a UAS can still answer the sender (a 400 needs the Via, From, To, Call-ID and CSeq).
        self.partial = partial
