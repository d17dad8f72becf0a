"""Call records and their alerts through the 2010 REST API, read from the twin's memory.

- ``GET /2010-04-01/Accounts/{AC}/Calls.json`` (filters ``Status``, ``From``, ``To``; newest
  first) and ``GET …/Calls/{CallSid}.json``: Twilio's Call resource shape.
- ``GET …/Calls/{CallSid}/Notifications.json`` and ``…/Notifications/{NO…}.json``: one
  Notification per alert of the call (``error_code``, ``log`` "0" error / "1" warning,
  ``message_text``, ``more_info``), Twilio's per-call Notification resource, so the official
  SDK reads them with ``client.calls(sid).notifications.list()``. A diagnostic finding with
  the code of an alert rides on that alert's Notification (extra field ``siptwin_finding``);
  every other finding follows as a Notification of its own, marked the same way.
- ``GET /siptwin/v1/Accounts/{AC}/Calls/{CallSid | Call-ID | last}/Findings.json`` and
  ``GET /siptwin/v1/Accounts/{AC}/Calls.json``: siptwin's own (non-Twilio) endpoints for
  ``siptwin explain``, covering refused calls and REGISTERs too (docs/diagnostics.md).

Only accepted calls (those with a CA SID) are listed. A call belongs to the processing region
of the domain that took it: an ie1 domain's calls are listed by the ie1 API. Calls live in the
:class:`~siptwin.model.calls.CallRegistry` of the running twin, not in the store: they are
as ephemeral as the twin's SIP state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..model.calls import Alert, Call, CallRegistry
from ..model.codes import WARNING_CODES
from ..model.findings import Finding
from ..model.presentation import plain_uri
from ..model.sids import SidPrefix, stable_sid
from . import representations as shapes
from .errors import ErrorCode, bad_request
from .http import ApiRequest, Handler, json_response
from .model import Page
from .params import PAGING_PARAMETERS, encode_page_token, paging

CALLS_KEY = web.AppKey("siptwin.cloud.calls", CallRegistry)
# Findings for a call record and the control-plane database (the composition root passes
# siptwin.diagnostics.diagnose_call; without one, calls have no findings).
Diagnose = Callable[[Call, Path], list[Finding]]
DIAGNOSE_KEY: web.AppKey[Diagnose] = web.AppKey("siptwin.cloud.diagnose")
CALL_STATUSES = ("queued", "ringing", "in-progress", "canceled", "completed", "failed", "busy",
                 "no-answer")
CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls"
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")


def _registry(call: ApiRequest) -> CallRegistry:
    registry = call.request.app.get(CALLS_KEY)
    return registry if registry is not None else CallRegistry()


def _visible(record: Call, call: ApiRequest) -> bool:
    return (record.sid is not None and record.account_sid == call.account.sid
            and (record.processing_region or "us1") == call.region)


def _plain(uri: str) -> str:
    """The caller/callee as Twilio lists them: the URI without parameters (as in webhooks)."""
    return plain_uri(uri) if uri else uri


def _date(seconds: float | None) -> str | None:
    return shapes.rfc2822(int(seconds)) if seconds is not None else None


def _status(record: Call) -> str:
    return record.status if record.status in CALL_STATUSES else "failed"


def call_json(record: Call) -> dict[str, Any]:
    base = f"{shapes.account_base(record.account_sid or '')}/Calls/{record.sid}"
    from_, to = _plain(record.from_uri), _plain(record.request_uri or record.to_uri)
    ended = record.ended_at is not None
    return {
        "account_sid": record.account_sid,
        "annotation": None,
        "answered_by": None,
        "api_version": shapes.API_VERSION,
        "caller_name": None,
        "date_created": _date(record.created_at),
        "date_updated": _date(record.ended_at or record.answered_at or record.created_at),
        "direction": "inbound",
        "duration": str(record.duration) if ended else None,
        "end_time": _date(record.ended_at),
        "forwarded_from": None,
        "from": from_,
        "from_formatted": from_,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": record.sid,
        "start_time": _date(record.created_at),
        "status": _status(record),
        "stir_verstat": None,
        "subresource_uris": {
            "notifications": f"{base}/Notifications.json",
            "recordings": f"{base}/Recordings.json",
            "events": f"{base}/Events.json",
        },
        "to": to,
        "to_formatted": to,
        "trunk_sid": None,
        "uri": f"{base}.json",
    }


def notification_sid(record: Call, index: int) -> str:
    """Stable per alert, so fetching by SID works while the call is in memory."""
    return stable_sid(SidPrefix.NOTIFICATION, f"{record.sid}/{index}")


def notification_json(record: Call, index: int, alert: Alert) -> dict[str, Any]:
    text = f"{alert.code} {alert.message}" + (f": {alert.detail}" if alert.detail else "")
    return _notification(record, notification_sid(record, index), _date(alert.at),
                         str(alert.code), "1" if alert.code in WARNING_CODES else "0", text,
                         f"https://www.twilio.com/docs/errors/{alert.code}")


def _notification(record: Call, sid: str, at: str | None, error_code: str | None, log: str,
                  text: str, more_info: str) -> dict[str, Any]:
    """Twilio's Notification resource for one call; what the call did not have is null."""
    return {
        "account_sid": record.account_sid,
        "api_version": shapes.API_VERSION,
        "call_sid": record.sid,
        "date_created": at,
        "date_updated": at,
        "error_code": error_code,
        "log": log,
        "message_date": at,
        "message_text": text,
        "more_info": more_info,
        "request_method": None,
        "request_url": None,
        "request_variables": None,
        "response_body": None,
        "response_headers": None,
        "sid": sid,
        "uri": f"{shapes.account_base(record.account_sid or '')}/Calls/{record.sid}"
               f"/Notifications/{sid}.json",
    }


def _page(call: ApiRequest, array_key: str, rows: list[dict[str, Any]],
          extra_query: tuple[str, ...] = ()) -> web.Response:
    """Paging over an in-memory list: the token names the position of a page's last row."""
    query = call.query_params(*PAGING_PARAMETERS, *extra_query)
    spec = paging(query)
    start = spec.request.offset
    if spec.request.after_seq is not None:
        start = spec.request.after_seq + 1
    chunk = rows[start:start + spec.page_size]
    has_more = start + spec.page_size < len(rows)

    token = encode_page_token(start + len(chunk) - 1) if chunk else None
    body = shapes.list_envelope(
        call.path, array_key, Page(chunk, has_more), lambda row: row,
        spec.page_size, spec.page_number, token,
        [(name, query[name]) for name in extra_query if name in query],
    )
    return json_response(body)


def _record(call: ApiRequest) -> Call:
    sid = call.parts["CallSid"]
    if not CALL_SID.fullmatch(sid):
        raise call.missing()
    record = _registry(call).by_sid(sid)
    if record is None or not _visible(record, call):
        raise call.missing()
    return record


async def list_calls(call: ApiRequest) -> web.Response:
    filters = call.query_params(*PAGING_PARAMETERS, "Status", "From", "To")
    status = filters.get("Status")
    if status is not None and status not in CALL_STATUSES:
        raise bad_request(ErrorCode.INVALID_PARAMETER,
                          f"Status must be one of {', '.join(CALL_STATUSES)}.")
    records = [r for r in _registry(call).all() if _visible(r, call)]
    records.sort(key=lambda r: r.created_at, reverse=True)
    rows = [call_json(r) for r in records]
    rows = [row for row in rows
            if (status is None or row["status"] == status)
            and ("From" not in filters or row["from"] == filters["From"])
            and ("To" not in filters or row["to"] == filters["To"])]
    return _page(call, "calls", rows, ("Status", "From", "To"))


async def fetch_call(call: ApiRequest) -> web.Response:
    return json_response(call_json(_record(call)))


async def list_call_notifications(call: ApiRequest) -> web.Response:
    record = _record(call)
    return _page(call, "notifications", _notifications(call, record))


def _notifications(call: ApiRequest, record: Call) -> list[dict[str, Any]]:
    """One per alert; a finding with the alert's code rides on it (``siptwin_finding``), the
    other findings follow as notifications of their own."""
    rows = [notification_json(record, i, alert) for i, alert in enumerate(record.alerts)]
    for finding in _findings(call, record):
        alert_row = next((r for r in rows if "siptwin_finding" not in r and finding.code
                          and r["error_code"] == str(finding.code)), None)
        if alert_row is not None:
            alert_row["siptwin_finding"] = finding.as_record()
        else:
            rows.append(finding_notification_json(record, finding))
    return rows


async def fetch_call_notification(call: ApiRequest) -> web.Response:
    record = _record(call)
    for row in _notifications(call, record):
        if row["sid"] == call.parts["Sid"]:
            return json_response(row)
    raise call.missing()


# --- diagnostics: findings as notifications, and siptwin's own endpoint -----------------------


def _findings(call: ApiRequest, record: Call) -> list[Finding]:
    diagnose = call.request.app.get(DIAGNOSE_KEY)
    return diagnose(record, call.store.path) if diagnose is not None else []


def finding_notification_json(record: Call, finding: Finding) -> dict[str, Any]:
    """A diagnostic finding in Twilio's Notification shape, marked by ``siptwin_finding``."""
    sid = stable_sid(SidPrefix.NOTIFICATION, f"{record.sid}/finding/{finding.id}")
    at = _date(record.ended_at or record.answered_at or record.created_at)
    return {
        **_notification(record, sid, at, str(finding.code) if finding.code else None,
                        "0" if finding.severity == "error" else "1",
                        f"{finding.id}: {finding.sentence} Fix: {finding.fix}",
                        finding.more_info or f"siptwin:diagnostics/{finding.id}"),
        "siptwin_finding": finding.as_record(),
    }


SIPTWIN_CALLS = "/siptwin/v1/Accounts/{AccountSid}/Calls"


def _any_visible(record: Call, call: ApiRequest) -> bool:
    """Every call the account's domains took. Calls no domain claimed (an unknown host) may
    name anyone's mistyped domain and caller: only a top-level account (the twin's operator,
    whom ``siptwin explain`` speaks for) sees them, never a subaccount."""
    if record.account_sid is None:
        return not call.account.is_subaccount
    return record.account_sid == call.account.sid


def diagnosis_json(record: Call, findings: list[Finding]) -> dict[str, Any]:
    outcome = record.status + (f" ({record.final_status})" if record.final_status else "")
    return {
        "call_id": record.call_id, "sid": record.sid, "method": record.method,
        "region": record.region, "domain_name": record.domain_name,
        "request_uri": record.request_uri, "from": record.from_uri,
        "source": f"{record.source_ip}:{record.source_port} ({record.transport})",
        "status": record.status, "final_status": record.final_status, "outcome": outcome,
        "process": record.process,
        "alerts": [{"code": a.code, "message": a.message, "detail": a.detail}
                   for a in record.alerts],
        "findings": [f.as_record() for f in findings],
    }


async def fetch_call_findings(call: ApiRequest) -> web.Response:
    """``GET /siptwin/v1/Accounts/{AC}/Calls/{CallSid | Call-ID | last}/Findings.json``."""
    ref = call.parts["CallRef"]
    records = [r for r in _registry(call).all() if _any_visible(r, call)]
    if ref == "last":
        record = records[-1] if records else None
    else:
        record = next((r for r in reversed(records) if ref in (r.sid, r.call_id)), None)
    if record is None:
        raise call.missing()
    return json_response(diagnosis_json(record, _findings(call, record)))


async def list_recent_calls(call: ApiRequest) -> web.Response:
    """``GET /siptwin/v1/Accounts/{AC}/Calls.json``: recent calls and REGISTERs, newest first,
    rejected ones included (Twilio's Calls list has accepted calls only)."""
    records = [r for r in _registry(call).all() if _any_visible(r, call)][-50:]
    rows = [{"call_id": r.call_id, "sid": r.sid, "method": r.method, "region": r.region,
             "request_uri": r.request_uri, "status": r.status, "final_status": r.final_status,
             "process": r.process}
            for r in reversed(records)]
    return json_response({"calls": rows})


CALL_ROUTES: dict[str, dict[str, Handler]] = {
    CALLS + ".json": {"GET": list_calls},
    CALLS + "/{CallSid}.json": {"GET": fetch_call},
    CALLS + "/{CallSid}/Notifications.json": {"GET": list_call_notifications},
    CALLS + "/{CallSid}/Notifications/{Sid}.json": {"GET": fetch_call_notification},
    SIPTWIN_CALLS + ".json": {"GET": list_recent_calls},
    SIPTWIN_CALLS + "/{CallRef}/Findings.json": {"GET": fetch_call_findings},
}
