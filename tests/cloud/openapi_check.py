"""Checks every 2xx body the twin returns against Twilio's OpenAPI documents.

The documents are vendored in ``tests/data/openapi`` (origin, version and licence in its
README).  Their resource schemas are permissive (every property
nullable, no ``required``), so besides validating we compare each body's key set with the
schema's property set: a missing or extra field fails.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENAPI_DIR = REPO_ROOT / "tests" / "data" / "openapi"
SPEC_FILES = ("twilio_api_v2010.sip.json", "twilio_routes_v2.sipdomains.json",
              "twilio_api_v2010.incoming_phone_numbers.json", "twilio_voice_v1.byoc_trunks.json")
REGION_PREFIX = re.compile(r"^/(us1|ie1|au1)(?=/)")

# Accounts.json is outside the SIP subset; this is the field set of Twilio's account resource
# the twin serves (the SDK's AccountInstance reads exactly these).
ACCOUNT_FIELDS = {
    "auth_token", "date_created", "date_updated", "friendly_name", "owner_account_sid",
    "sid", "status", "subresource_uris", "type", "uri",
}
ACCOUNT_LIST_FIELDS = {
    "accounts", "end", "first_page_uri", "next_page_uri", "page", "page_size",
    "previous_page_uri", "start", "uri",
}

# Keys.json is outside the SIP subset too: Twilio's documented Key resource (the SDK's
# KeyInstance), plus the secret on creation only (NewKeyInstance).
KEY_FIELDS = {"date_created", "date_updated", "friendly_name", "sid"}
NEW_KEY_FIELDS = KEY_FIELDS | {"secret"}
KEY_LIST_FIELDS = (ACCOUNT_LIST_FIELDS - {"accounts"}) | {"keys"}
_KEYS_PATH = re.compile(r"^/2010-04-01/Accounts/[^/]+/Keys(?P<one>/[^/]+)?\.json$")

_RFC2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d{2}:\d{2}:\d{2} \+0000$"
)
_ISO8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    def string_format(name: str, test: Callable[[str], bool]) -> None:
        # Like jsonschema's own checkers, a format says nothing about non-strings (nulls).
        checker.checks(name)(lambda value: not isinstance(value, str) or test(value))

    string_format("date-time-rfc-2822", lambda value: bool(_RFC2822.match(value)))
    string_format("date-time", lambda value: bool(_ISO8601.match(value)))
    string_format("http-method", lambda value: value in ("GET", "POST", "PUT", "DELETE"))
    # Paging URIs are host-relative in Twilio's own examples; accept those and absolute URLs.
    string_format("uri", lambda value: value.startswith(("/", "http://", "https://")))
    return checker


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` -> JSON Schema ``type: [..., "null"]``."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        if "type" in converted:
            converted["type"] = [converted["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    return converted


@dataclass(frozen=True)
class Operation:
    spec: dict[str, Any]
    method: str
    pattern: re.Pattern[str]
    responses: dict[str, Any]


def _path_regex(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
    return re.compile(f"^{regex}$")


@cache
def operations() -> tuple[Operation, ...]:
    found = []
    for name in SPEC_FILES:
        path = OPENAPI_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"Twilio OpenAPI document missing: {path} "
                                    "(the repository vendors it in tests/data/openapi)")
        spec = _json_schema(json.loads(path.read_text()))
        for template, item in spec["paths"].items():
            for method in ("get", "post", "delete"):
                if method in item:
                    found.append(Operation(spec, method.upper(), _path_regex(template),
                                           item[method]["responses"]))
    return tuple(found)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _check_keys(spec: dict[str, Any], schema: dict[str, Any], body: Any, where: str) -> None:
    schema = _resolve(spec, schema)
    properties = schema.get("properties")
    if properties is None or not isinstance(body, dict):
        return
    assert set(body) == set(properties), (
        f"{where}: fields differ from the schema: extra {sorted(set(body) - set(properties))}, "
        f"missing {sorted(set(properties) - set(body))}"
    )
    for key, value in body.items():
        child = _resolve(spec, properties[key])
        if child.get("type") in ("array", ["array", "null"]) and isinstance(value, list):
            for index, item in enumerate(value):
                _check_keys(spec, child["items"], item, f"{where}.{key}[{index}]")


def check_response(method: str, path: str, status: int, text: str) -> None:
    """Validate one successful response; raises AssertionError on any mismatch."""
    if not 200 <= status < 300:
        return
    path = REGION_PREFIX.sub("", path)
    if status == 204:
        assert text == "", f"{method} {path}: 204 with a body"
        return
    body = json.loads(text)
    if path == "/2010-04-01/Accounts.json" and method == "GET":
        assert set(body) == ACCOUNT_LIST_FIELDS
        for account in body["accounts"]:
            assert set(account) == ACCOUNT_FIELDS
        return
    keys = _KEYS_PATH.match(path)
    if keys and keys["one"] is None and method == "GET":
        assert set(body) == KEY_LIST_FIELDS, sorted(body)
        for key in body["keys"]:
            assert set(key) == KEY_FIELDS, sorted(key)
        return
    if keys:
        created = keys["one"] is None and method == "POST"
        assert set(body) == (NEW_KEY_FIELDS if created else KEY_FIELDS), sorted(body)
        assert _RFC2822.match(body["date_created"]) and _RFC2822.match(body["date_updated"])
        return
    if (path.startswith("/2010-04-01/Accounts") and "/SIP/" not in path
            and "/IncomingPhoneNumbers" not in path):
        assert set(body) == ACCOUNT_FIELDS, sorted(body)
        return
    for operation in operations():
        if operation.method == method and operation.pattern.match(path):
            response = operation.responses.get(str(status))
            assert response is not None, f"{method} {path}: status {status} is not documented"
            schema = response["content"]["application/json"]["schema"]
            root = copy.copy(schema)
            root["components"] = operation.spec["components"]
            Draft7Validator(root, format_checker=_format_checker()).validate(body)
            _check_keys(operation.spec, schema, body, f"{method} {path}")
            return
    raise AssertionError(f"{method} {path}: no documented operation matches")
