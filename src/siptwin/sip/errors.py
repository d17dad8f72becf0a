"""The one exception type the SIP core raises for bad input."""

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
