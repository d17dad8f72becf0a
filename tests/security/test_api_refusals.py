"""Finding 9 of issue 15, REST side: every refusal in Twilio's JSON error shape, never a 500.

A PageToken beyond 2^63 overflowed SQLite and gave a 500 on every list endpoint; requests that
aiohttp refuses before any handler runs (an unparsable request line, header or chunk size, a
line over 8190 bytes, too many headers, a request target that is not a path) were answered in
plain text.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from base64 import b64encode

import pytest
from twilio.rest import Client

from siptwin.cloud.api import build_routes

from ..cloud.conftest import Twin, twin_factory  # noqa: F401 - fixture

HUGE_TOKENS = ["PA" + "f" * 32, "PA" + "0" * 16 + "8" + "0" * 15]  # 2^128 - 1 and 2^63


@pytest.fixture
def api(twin_factory) -> Twin:  # noqa: F811
    return twin_factory()


def _shape(status: int, headers: dict[str, str], body: bytes) -> dict:
    assert headers.get("content-type", "").startswith("application/json"), (status, body[:200])
    parsed = json.loads(body)
    assert set(parsed) == {"code", "message", "more_info", "status"}
    assert parsed["status"] == status and parsed["more_info"].endswith(str(parsed["code"]))
    return parsed


def _list_paths(api: Twin) -> list[str]:
    client: Client = api.client()
    sip = client.api.v2010.account.sip
    domain = sip.domains.create(domain_name="acme.sip.twilio.com")
    acl = sip.ip_access_control_lists.create(friendly_name="office")
    users = sip.credential_lists.create(friendly_name="users")
    values = {"AccountSid": api.master.sid, "DomainSid": domain.sid,
              "IpAccessControlListSid": acl.sid, "CredentialListSid": users.sid,
              "CallSid": "CA" + "0" * 32}
    paths = []
    for route in build_routes():
        template = route.pattern.pattern
        if "GET" not in route.methods or not template.endswith(r"\.json$"):
            continue
        if template.startswith("^/siptwin/"):
            continue  # the twin's own recent-calls view: not a Twilio list, no paging
        if re.search(r"\)\\\.json\$$", template) or "(?P<CallRef>" in template:
            continue  # an instance (its last segment a sid) or a call's findings, not a list
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], template)
        paths.append(path.lstrip("^").rstrip("$").replace("\\", ""))
    return paths


def _get(api: Twin, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(api.url + path)
    request.add_header("Authorization", "Basic " + b64encode(
        f"{api.master.sid}:{api.master.auth_token}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as refusal:
        return refusal.code, {k.lower(): v for k, v in refusal.headers.items()}, refusal.read()


@pytest.mark.parametrize("token", HUGE_TOKENS)
def test_a_page_token_beyond_64_bits_is_a_400_on_every_list(api: Twin, token: str) -> None:
    refused = []
    for path in _list_paths(api):
        status, headers, body = _get(api, f"{path}?PageToken={token}")
        assert 400 <= status < 500, (path, status, body[:200])
        parsed = _shape(status, headers, body)
        if status == 400:
            assert parsed["code"] == 20001
            refused.append(path)
        else:  # the parent does not exist (a made-up CallSid)
            assert status == 404, (path, parsed)
    assert len(refused) >= 12, refused
    print(len(refused), "lists refuse it")


def _raw(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _low_level_cases(auth: bytes, collection: bytes) -> dict[str, bytes]:
    post = b"POST " + collection + b" HTTP/1.1\r\nHost: x\r\n" + auth
    return {
        "not a request line": b"GARBAGE\r\n\r\n",
        "invalid method": b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "unknown HTTP version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        "request line over 8190 bytes": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "header over 8190 bytes": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",
        "too many headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
                            + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        "header line without colon": b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "NUL in the path": b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
        "bad Content-Length": post + b"Content-Length: abc\r\n\r\n",
        "bad chunk size": post + b"Transfer-Encoding: chunked\r\n"
                          b"Content-Type: application/x-www-form-urlencoded\r\n\r\nzz\r\n",
        "CONNECT to host:port": b"CONNECT x:1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    }


@pytest.mark.parametrize("case", list(_low_level_cases(b"", b"")))
def test_low_level_refusals_have_twilio_json_shape(api: Twin, case: str) -> None:
    auth = b"Authorization: Basic " + b64encode(
        f"{api.master.sid}:{api.master.auth_token}".encode()) + b"\r\n"
    collection = f"/2010-04-01/Accounts/{api.master.sid}/SIP/Domains.json".encode()
    version = api.store.version()
    status, headers, body = _raw(api.url, _low_level_cases(auth, collection)[case])
    assert 400 <= status < 500
    parsed = _shape(status, headers, body)
    assert parsed["code"] in (20001, 20404)
    assert headers.get("x-twilio-error-code") == str(parsed["code"])
    assert api.store.version() == version
