"""``siptwin explain``: ask a running twin (``siptwin up``) for a call's findings and print them."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ..model.state_dir import API_FILE, DATABASE_FILE, PID_FILE
from .text import format_findings


def credentials(state: Path) -> tuple[str, str] | None:
    sid, token = os.environ.get("TWILIO_ACCOUNT_SID"), os.environ.get("TWILIO_AUTH_TOKEN")
    api_file = state / API_FILE
    if api_file.exists():
        recorded = json.loads(api_file.read_text())
        if sid and recorded.get("account_sid") != sid:
            token = None
        sid = recorded.get("account_sid") or sid
    if sid and token:
        return sid, token
    if sid and (state / DATABASE_FILE).exists():
        from ..cloud.store import Store

        store = Store.open(state)
        try:
            account = store.account(sid)
        finally:
            store.close()
        if account is not None:
            return sid, account.auth_token
    return None


def fetch_findings(api_url: str, sid: str, token: str, ref: str) -> dict[str, Any]:
    path = f"/siptwin/v1/Accounts/{sid}/Calls/{urllib.parse.quote(ref, safe='')}/Findings.json"
    request = urllib.request.Request(api_url.rstrip("/") + path)
    basic = base64.b64encode(f"{sid}:{token}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback API)
        return json.loads(response.read())


def explain_remote(state: Path, ref: str, api_url: str | None, as_json: bool) -> int:
    api_file = state / API_FILE
    if api_url is None:
        if not api_file.exists() or not (state / PID_FILE).exists():
            print(f"siptwin: no running twin for state {state} (start one with 'siptwin up')",
                  file=sys.stderr)
            return 1
        api_url = json.loads(api_file.read_text())["api_url"]
    creds = credentials(state)
    if creds is None:
        print("siptwin: no account credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
              file=sys.stderr)
        return 1
    try:
        body = fetch_findings(api_url, creds[0], creds[1], ref)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            what = "no calls yet" if ref == "last" else f"no call {ref!r}"
            print(f"siptwin: {what} in the running twin", file=sys.stderr)
        else:
            print(f"siptwin: the API answered {err.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as err:
        print(f"siptwin: cannot reach the twin at {api_url}: {err}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(body, indent=2))
    else:
        print(format_findings(body["findings"], body), end="")
    return 1 if any(f["severity"] == "error" for f in body["findings"]) else 0
