"""Finding 9 of issue 15: records of calls to unknown domains were visible to every account.

Such a call belongs to no domain, hence to no account; it may carry someone's mistyped domain
and caller. Only a top-level account (the operator's, which ``siptwin explain`` uses) sees it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from base64 import b64encode

import pytest

pytestmark = pytest.mark.asyncio


def _recent(api: str, sid: str, token: str, path_sid: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{api}/siptwin/v1/Accounts/{path_sid or sid}/Calls.json")
    request.add_header("Authorization", "Basic " + b64encode(f"{sid}:{token}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refusal:
        return refusal.code, json.loads(refusal.read())


def _findings(api: str, sid: str, token: str, ref: str) -> int:
    request = urllib.request.Request(f"{api}/siptwin/v1/Accounts/{sid}/Calls/{ref}/Findings.json")
    request.add_header("Authorization", "Basic " + b64encode(f"{sid}:{token}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status
    except urllib.error.HTTPError as refusal:
        return refusal.code


async def test_unknown_domain_calls_are_hidden_from_subaccounts(harness) -> None:
    twin = harness.twin
    sub = await asyncio.to_thread(
        lambda: harness.client().api.v2010.accounts.create(friendly_name="tenant"))
    result = await harness.call("us1", "sip:1000@nobody-owns-this.sip.us1.twilio.com",
                                wait_final=2)
    record = twin.calls.get(result.call_id)
    assert record is not None and record.account_sid is None
    api = twin.api_url
    status, master_view = await asyncio.to_thread(_recent, api, twin.account_sid, twin.auth_token)
    assert status == 200 and result.call_id in {c["call_id"] for c in master_view["calls"]}
    status, sub_view = await asyncio.to_thread(_recent, api, sub.sid, sub.auth_token)
    assert status == 200 and result.call_id not in {c["call_id"] for c in sub_view["calls"]}
    # Nor through the master's credentials on the subaccount's path, nor by its Call-ID.
    status, via_master = await asyncio.to_thread(_recent, api, twin.account_sid,
                                                 twin.auth_token, sub.sid)
    assert status == 200 and result.call_id not in {c["call_id"] for c in via_master["calls"]}
    assert await asyncio.to_thread(_findings, api, sub.sid, sub.auth_token, result.call_id) == 404
    assert await asyncio.to_thread(_findings, api, twin.account_sid, twin.auth_token,
                                   result.call_id) == 200
