"""Findings as text, the way ``siptwin explain`` prints them."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from ..model.findings import Finding

WIDTH = 100


def _get(finding: Finding | Mapping[str, Any], key: str) -> Any:
    return finding.get(key) if isinstance(finding, Mapping) else getattr(finding, key)


def format_findings(findings: Iterable[Finding | Mapping[str, Any]],
                    call: Mapping[str, Any] | None = None) -> str:
    lines: list[str] = []
    if call:
        method = call.get("method")
        sid = call.get("sid") or ("(REGISTER)" if method == "REGISTER" else
                                  "(TLS on the plain port: no SIP was read)" if method == "TLS"
                                  else "(no CallSid: refused before a call was created)")
        lines.append(f"Call-ID {call.get('call_id')}  {sid}")
        lines.append(f"  {call.get('request_uri')}  from {call.get('source')} via "
                     f"{call.get('region')}  -> {call.get('outcome')}")
        lines.append("")
    items = list(findings)
    if not items:
        lines.append("No findings: nothing in this call looks wrong.")
    for f in items:
        code = _get(f, "code")
        head = f"{_get(f, 'severity').upper():<8}{_get(f, 'id')}" + (f"  (Twilio {code})" if code else "")
        lines.append(head)
        lines += textwrap.wrap(_get(f, "sentence"), WIDTH, initial_indent="  ",
                               subsequent_indent="  ")
        for item in _get(f, "evidence"):
            if item:
                lines.append(textwrap.shorten(f"  | {item}", WIDTH + 40, placeholder=" …"))
        lines += textwrap.wrap("Fix: " + _get(f, "fix"), WIDTH, initial_indent="  ",
                               subsequent_indent="       ")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
