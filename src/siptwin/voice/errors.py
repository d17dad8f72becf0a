"""Twilio's webhook and TwiML error codes (spec §7), with the names its debugger shows.

An alert's ``message`` is Twilio's name for the code; its ``detail`` says what happened on this
call (which URL, which status, which element) so a user can see why without a packet capture.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR_NAMES: dict[int, str] = {
    11200: "HTTP retrieval failure",
    11205: "HTTP connection failure",
    11206: "HTTP protocol violation",
    11210: "HTTP bad host name",
    11215: "HTTP too many redirects",
    11220: "SSL/TLS handshake error",
    11237: "Certificate invalid - could not find path to certificate",
    11750: "TwiML response body too large",
    12100: "Document parse failure",
    12200: "Schema validation warning",
    12300: "Invalid Content-Type",
    12400: "Internal failure",
    13243: "Dial: invalid SIP URI",
    13251: "Dial: too many SIP headers",
    13253: "Dial: SIP header too long",
    32014: "Call ended: no audio received for an extended period",
    15003: "Call progress: warning response to callback URL",
    21227: "Headers part of SIP URI is too long",
}

# Codes Twilio logs as warnings (log level 1); every other code is an error (level 0).
WARNING_CODES = frozenset({12200, 13251, 13253, 15003})


@dataclass(frozen=True)
class VoiceError:
    code: int
    detail: str

    @property
    def message(self) -> str:
        return ERROR_NAMES.get(self.code, "Error")

    def header(self) -> tuple[int, str]:
        """The ``(code, text)`` pair ``CallSession.reject`` puts in X-Twilio-Error."""
        return self.code, self.message
