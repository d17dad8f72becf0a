"""Twilio's codes and the names the twin's packages share about a call, in one table each.

- :data:`REALM`: the digest realm Twilio challenges with, whatever the domain.
- :class:`CallError`: a call-time error a region node puts in ``X-Twilio-Error`` (spec §7),
  with every such error the node and the registrar raise, each in one place.
- :data:`ERROR_NAMES`: webhook and TwiML error codes with the names Twilio's debugger shows;
  :class:`VoiceError` is one such error on one call. An alert's ``message`` is Twilio's name
  for the code; its ``detail`` says what happened on this call (which URL, which status, which
  element) so a user can see why without a packet capture.
- :data:`WARNING_CODES`: the codes Twilio logs as warnings (every other code is an error).
- :class:`Stage`: the pipeline stages (spec §4.2) by name, as a rejected call's ``decided_by``
  records them and diagnostics reads them.
- :class:`CallStatus`: every value of ``Call.status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

REALM = "sip.twilio.com"


@dataclass(frozen=True)
class CallError:
    """A SIP-side Twilio error: the code and text of ``X-Twilio-Error: <code> <text>``."""

    code: int
    message: str

    def header(self) -> str:
        return f"{self.code} {self.message}"


# Call-time errors of the INVITE pipeline and the registrar (spec §7).
# An unknown domain carries no code: no account can be attributed, so Twilio logs nothing
# (spec §4.2 step 3); 32002 is <Dial>'s code for dialling one.
TOO_MANY_HOPS = CallError(32006, "Too many hops")
NO_AUTH_MAPPED = CallError(32200, "Insufficient permissions: no authentication is mapped to the domain")
NOT_TLS = CallError(32209, "Secure domain but non-TLS transport")
IP_NOT_IN_ACL = CallError(32201, "Authentication failure - source IP Address not in ACL")
BAD_CREDENTIALS = CallError(32202, "Bad user credentials")
BAD_SDP = CallError(32102, "Bad SDP")
SRTP_NOT_SECURE = CallError(32207, "SRTP offered but domain not secure")
RTP_ON_SECURE = CallError(32208, "Secure domain but RTP offered")
NO_COMMON_CODEC = CallError(32102, "No PCMU or PCMA in the SDP offer")
# Twilio names no code of its own for an SRTP offer it cannot key (spec §4.5: the two
# AES_CM_128 suites, no MKI); to the caller it is the same as offering no SRTP at all.
SRTP_NOT_KEYABLE = CallError(32208, "Secure domain but no acceptable SDES-SRTP key offered "
                             "(AES_CM_128_HMAC_SHA1_80 or _32, no MKI)")
SIPS_NOT_SUPPORTED = CallError(32110, "sips: URIs are not supported; use sip: with ;transport=tls")
REGISTRATION_DISABLED = CallError(32210, "Registration not enabled on the SIP Domain")
NO_REGISTRATION_LIST = CallError(32212, "No credential list mapped for registrations")
TOO_MANY_BINDINGS = CallError(32007, "Too many registrations for this address of record")
REGISTRATION_RATE = CallError(32008, "Registrations per second limit exceeded")
AUTHORIZATION_NAME_MISMATCH = CallError(
    32106, "SIP: Authentication Error - authorization name and username do not match")
POSSIBLE_LOOP = CallError(32105, "Possible loop: Contact is a loopback address")
CPS_EXCEEDED = CallError(32013, "SIP Interface calls per second limit exceeded")
EMPTY_BODY = CallError(32103, "Empty body where not allowed")
# Twilio's code for any request of an account that is suspended or closed (spec §4.2, the
# SIP response is not documented: setting inactive_account_status).
ACCOUNT_NOT_ACTIVE = CallError(10001, "Account is not active")
# The optional failed-authentication throttle (settings auth_failure_*): Twilio publishes none,
# so the twin answers with the bad-credentials code and says why.
AUTH_THROTTLED = CallError(32202, "Bad user credentials: too many failed attempts from this "
                           "address, try again later")


class Stage(StrEnum):
    """The stages of the INVITE pipeline, in the spec's order (``pipeline.STAGES`` runs them).
    The registrar's decisions are recorded as :attr:`REGISTRATION`."""

    MAX_FORWARDS_NOT_EXHAUSTED = "max_forwards_not_exhausted"
    SIP_SCHEME_ONLY = "sip_scheme_only"
    DOMAIN_EXISTS = "domain_exists"
    ACCOUNT_ACTIVE = "account_active"
    CONTACT_NOT_LOOPBACK = "contact_not_loopback"
    CALL_AUTHENTICATION_MAPPED = "call_authentication_mapped"
    SECURE_DOMAIN_USES_TLS = "secure_domain_uses_tls"
    SOURCE_IP_IN_ACL = "source_ip_in_acl"
    DIGEST_CREDENTIALS_VALID = "digest_credentials_valid"
    MEDIA_OFFER_ACCEPTABLE = "media_offer_acceptable"
    ACCOUNT_WITHIN_CPS = "account_within_cps"
    REGISTRATION = "registration"


class CallStatus(StrEnum):
    """``Call.status``: what the twin knows of a call (or a REGISTER exchange) so far."""

    RECEIVED = "received"
    REJECTED = "rejected"
    DROPPED = "dropped"
    CHALLENGED = "challenged"  # answered 401/407 and not (yet) retried with credentials
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    REGISTERED = "registered"  # a REGISTER exchange the registrar accepted

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
    32002: "Dial failure: Twilio SIP Domain not found",
    32009: "Dialed user not registered with the domain",
    32214: "Dial: SIP domain of another account",
    32220: "Edge specified when dialing a registered endpoint",
    32223: "No username in SIP URI when calling a registered endpoint",
    13251: "Dial: too many SIP headers",
    13253: "Dial: SIP header too long",
    32014: "Call ended: no audio received for an extended period",
    15003: "Call progress: warning response to callback URL",
    21227: "Headers part of SIP URI is too long",
}

# Codes Twilio logs as warnings (log level 1); every other code is an error (level 0).
WARNING_CODES = frozenset({12200, 13251, 13252, 13253, 15003, 32014, 32015, 32101, 32110,
                           32111, 32112, 32113, 32114})


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
