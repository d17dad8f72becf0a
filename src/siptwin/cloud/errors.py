"""Twilio-shaped errors raised by the control plane.

Every rejection the REST API can produce is a :class:`TwilioError`; the HTTP layer turns it
into ``{code, message, more_info, status}`` plus the ``X-Twilio-Error-Code`` header.  The
numeric codes live here, named, so a reader can grep one place for what each code means.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Twilio error-dictionary codes used by the SIP Domain control plane (spec section 7)."""

    INVALID_PARAMETER = 20001  # unknown/duplicated/undecodable parameter or request body
    AUTHENTICATION_FAILED = 20003
    METHOD_NOT_ALLOWED = 20004
    FORBIDDEN = 20403
    NOT_FOUND = 20404
    INTERNAL = 20500
    MAX_DOMAINS = 21230
    DOMAIN_VALIDATION = 21231
    INVALID_DOMAIN = 21232
    DOMAIN_HAS_SUBDOMAINS = 21233
    IP_ACL_VALIDATION = 21235
    IP_ACL_STILL_MAPPED = 21236
    MAX_IP_ADDRESSES = 21237
    IP_ADDRESS_VALIDATION = 21238
    MAX_CREDENTIAL_LISTS = 21239
    CREDENTIAL_LIST_VALIDATION = 21240
    CREDENTIAL_LIST_STILL_MAPPED = 21241
    MAX_CREDENTIALS = 21242
    CREDENTIAL_VALIDATION = 21243
    MAX_IP_ACLS = 21255
    INVALID_BYOC_TRUNK = 21300  # a BYOC trunk SID malformed, unknown or another account's
    INVALID_PHONE_NUMBER = 21421  # PhoneNumber missing or not E.164
    PHONE_NUMBER_UNAVAILABLE = 21422  # the number belongs to an account already
    PARENT_ACCOUNT_STATUS = 21477  # a top-level account cannot change its own status
    SUBACCOUNT_CLOSED = 21479  # a closed subaccount is not re-opened


class TwilioError(Exception):
    """A request the twin refuses, carrying the HTTP status and Twilio error code."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(f"{http_status} {code}: {message}")
        self.http_status = http_status
        self.code = int(code)
        self.message = message

    @property
    def more_info(self) -> str:
        return f"https://www.twilio.com/docs/errors/{self.code}"

    def body(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": self.more_info,
            "status": self.http_status,
        }


def bad_request(code: ErrorCode, message: str) -> TwilioError:
    return TwilioError(400, code, message)


def not_found(path: str) -> TwilioError:
    return TwilioError(404, ErrorCode.NOT_FOUND, f"The requested resource {path} was not found")


def authentication_failed() -> TwilioError:
    return TwilioError(
        401,
        ErrorCode.AUTHENTICATION_FAILED,
        "Authentication Error - invalid username",
    )


def method_not_allowed(method: str, path: str) -> TwilioError:
    return TwilioError(
        405, ErrorCode.METHOD_NOT_ALLOWED, f"Method {method} not allowed on {path}"
    )
