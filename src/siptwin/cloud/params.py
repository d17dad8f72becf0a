"""Decoding form-encoded request bodies and query strings, refusing malformed input.

Twilio's 2010 API takes ``application/x-www-form-urlencoded`` bodies with PascalCase
names.  Everything about the *shape* of a request that is wrong — another content type, a
body that is not UTF-8, a parameter given twice, an unknown parameter, bad paging values — is
refused here with a Twilio-shaped 4xx before any handler or store code runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl

from aiohttp import web

from .errors import ErrorCode, TwilioError, bad_request
from .model import PageRequest

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
PAGE_TOKEN_PREFIX = "PA"
PAGING_PARAMETERS = ("PageSize", "Page", "PageToken")
_PAGE_TOKEN = re.compile(PAGE_TOKEN_PREFIX + r"([0-9a-f]{32})")


class UnknownParameterPolicy(StrEnum):
    """What to do with a parameter an operation does not define: the ``unknown_parameters``
    setting (siptwin.settings).

    ``ignore`` (default) is Twilio's documented behaviour (spec §2.3: ignored, with warning
    20001); ``reject`` answers 400/20001 so typos surface at once.
    """

    REJECT = "reject"
    IGNORE = "ignore"


@dataclass
class ApiSettings:
    """The REST API's settings. Not frozen: a running twin changes ``unknown_parameters`` when
    a scenario changes its settings, and the API reads it per request."""

    unknown_parameters: UnknownParameterPolicy = UnknownParameterPolicy.IGNORE
    max_body_bytes: int = 64 * 1024
    # A domain's EmergencyCallerSid must name a phone number of the account ("exists") or
    # only look like a PN SID ("format"): the emergency_caller_check setting.
    emergency_caller_check: str = "exists"
    # Deleting a BYOC trunk or phone number a domain names: "refuse" or "clear" the
    # domain's reference (the referenced_delete setting).
    referenced_delete: str = "refuse"


def _decode_pairs(text: str, where: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise bad_request(ErrorCode.INVALID_PARAMETER, f"The {where} is not valid UTF-8.") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise bad_request(ErrorCode.INVALID_PARAMETER, f"Parameter {name} given more than once.")
        values[name] = value
    return values


async def read_form(request: web.Request, settings: ApiSettings) -> dict[str, str]:
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise TwilioError(413, ErrorCode.INVALID_PARAMETER, "Request body too large.")
    chunks: list[bytes] = []
    received = 0
    while chunk := await request.content.read(64 * 1024):
        received += len(chunk)
        if received > settings.max_body_bytes:  # chunked bodies carry no Content-Length
            raise TwilioError(413, ErrorCode.INVALID_PARAMETER, "Request body too large.")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        return {}
    if request.content_type != FORM_CONTENT_TYPE:
        raise TwilioError(
            415,
            ErrorCode.INVALID_PARAMETER,
            f"Unsupported Content-Type {request.content_type!r}; send {FORM_CONTENT_TYPE}.",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(ErrorCode.INVALID_PARAMETER, "The request body is not valid UTF-8.") from None
    return _decode_pairs(text, "request body")


def read_query(request: web.Request) -> dict[str, str]:
    return _decode_pairs(request.rel_url.raw_query_string, "query string")


def only_known(values: dict[str, str], allowed: Iterable[str], settings: ApiSettings) -> dict[str, str]:
    allowed_names = set(allowed)
    unknown = sorted(set(values) - allowed_names)
    if unknown and settings.unknown_parameters is UnknownParameterPolicy.REJECT:
        raise bad_request(
            ErrorCode.INVALID_PARAMETER, f"Unknown parameter(s): {', '.join(unknown)}."
        )
    return {name: value for name, value in values.items() if name in allowed_names}


@dataclass(frozen=True)
class Paging:
    page_size: int
    page_number: int
    request: PageRequest


def paging(query: dict[str, str]) -> Paging:
    page_size = _integer(query.get("PageSize"), "PageSize", DEFAULT_PAGE_SIZE)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise bad_request(ErrorCode.INVALID_PARAMETER, "PageSize must be between 1 and 1000.")
    page_number = _integer(query.get("Page"), "Page", 0)
    if page_number < 0:
        raise bad_request(ErrorCode.INVALID_PARAMETER, "Page must not be negative.")
    token = query.get("PageToken")
    if token:
        after_seq = decode_page_token(token)
        return Paging(page_size, page_number, PageRequest(page_size, after_seq=after_seq))
    return Paging(page_size, page_number, PageRequest(page_size, offset=page_number * page_size))


def _integer(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise bad_request(ErrorCode.INVALID_PARAMETER, f"{name} must be a non-negative integer.")
    return int(raw)


def encode_page_token(last_seq: int) -> str:
    """Opaque to clients; internally the position of the last record of the page."""
    return f"{PAGE_TOKEN_PREFIX}{last_seq:032x}"


def decode_page_token(token: str) -> int:
    match = _PAGE_TOKEN.fullmatch(token)
    # A position beyond SQLite's 64-bit integers was never issued (and would overflow a query).
    if match is None or int(match.group(1), 16) >= 2**63:
        raise bad_request(ErrorCode.INVALID_PARAMETER, "Invalid PageToken.")
    return int(match.group(1), 16)
