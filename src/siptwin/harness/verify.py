"""Passive verification: ``siptwin verify EXPECT.yaml`` judges the calls a running twin
recorded (since ``siptwin mark``, or since it started), whoever placed them.

The expectation file::

    calls:
      - name: alice over TLS                # optional; the report's row
        match: { username: alice }          # or from, to, domain, host, region, call_id
        count: { min: 1 }                   # or an integer; default min 1
        expect: { status: completed, transport: tls, host: acme.sip.ie1.twilio.com,
                  headers: { X-Site: ci }, codecs: [PCMU], findings: none }

Strings are globs (``acme-*``). Each entry becomes one result in the same record format as a
scenario item, so the suite's HTML report (ladder, raw messages, findings) renders it and a
JUnit file lists it.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jsonschema

from ..model.state_dir import API_FILE, PID_FILE
from ..model.wire import call_from_record
from .engine import ItemResult
from .outcome import Failure
from .pbx import received
from .scenario import _line_of, parse_yaml, schema_error

MARKS_FILE = "marks.json"
MARKS_LIMIT = 100

_glob_or_list = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_MATCH_KEYS = ("username", "from", "to", "domain", "host", "region", "call_id", "method")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["calls"],
    "properties": {
        "calls": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["match"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "match": {"type": "object", "additionalProperties": False,
                              "properties": {k: {"type": "string"} for k in _MATCH_KEYS}},
                    "count": {"oneOf": [
                        {"type": "integer", "minimum": 0},
                        {"type": "object", "additionalProperties": False, "minProperties": 1,
                         "properties": {"min": {"type": "integer", "minimum": 0},
                                        "max": {"type": "integer", "minimum": 0}}}]},
                    "expect": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "status": {"type": "string"},
                            "final_status": {"type": "integer"},
                            "transport": {"enum": ["udp", "tcp", "tls"]},
                            "host": {"type": "string"},
                            "region": {"type": "string"},
                            "username": {"type": "string"},
                            "headers": {"type": "object",
                                        "additionalProperties": {"type": ["string", "number"]}},
                            "absent_headers": {"type": "array", "items": {"type": "string"}},
                            "codecs": {"type": "array", "items": {"type": "string"}},
                            "findings": {"oneOf": [
                                {"const": "none"},
                                {"type": "array", "items": {"type": "string"}}]},
                            "no_findings": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class VerifyError(ValueError):
    """An expectation file or a twin that cannot be used; the message says where."""


@dataclass
class Expectation:
    name: str
    match: dict[str, str]
    minimum: int
    maximum: int | None
    expect: dict[str, Any]


def load_expectations(path: Path) -> list[Expectation]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise VerifyError(f"{path}: {err.strerror}") from None
    node, data = parse_yaml(path, text, VerifyError)
    if not isinstance(data, dict):
        raise VerifyError(f"{path}:1: an expectation file is a mapping with a 'calls' list")
    errors = list(_VALIDATOR.iter_errors(data))
    if errors:
        raise VerifyError(schema_error(path, node, errors))
    out = []
    for i, entry in enumerate(data["calls"]):
        count = entry.get("count", {"min": 1})
        low, high = (count, count) if isinstance(count, int) else (count.get("min", 0),
                                                                  count.get("max"))
        if high is not None and high < low:
            line = _line_of(node, ["calls", i, "count"])
            raise VerifyError(f"{path}:{line}: calls/{i}/count: max {high} is below min {low}")
        name = entry.get("name") or " ".join(f"{k}={v}" for k, v in entry["match"].items()) \
            or "every call"
        out.append(Expectation(name, dict(entry["match"]), low, high, entry.get("expect") or {}))
    return out


# ---------------------------------------------------------------------------- the running twin


def running_api(state: Path, api_url: str | None) -> str:
    if api_url:
        return api_url.rstrip("/")
    if not (state / API_FILE).exists() or not (state / PID_FILE).exists():
        raise VerifyError(f"no running twin for state {state} (start one with 'siptwin up')")
    return str(json.loads((state / API_FILE).read_text())["api_url"]).rstrip("/")


def fetch_records(api_url: str, sid: str, token: str, since: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"Since": str(since)})
    request = urllib.request.Request(
        f"{api_url}/siptwin/v1/Accounts/{sid}/CallRecords.json?{query}")
    basic = base64.b64encode(f"{sid}:{token}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the twin)
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise VerifyError(f"the twin's API answered {err.code} for the call records") from None
    except (urllib.error.URLError, OSError) as err:
        raise VerifyError(f"cannot reach the twin at {api_url}: {err}") from None
    return list(body["calls"])


def mark(state: Path, name: str | None = None) -> str:
    """Record now under ``name`` (default: a number) in the state directory; returns the name."""
    path = state / MARKS_FILE
    marks: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    now = time.time()
    name = name or f"{now:.6f}"
    marks.pop(name, None)
    marks[name] = now
    while len(marks) > MARKS_LIMIT:
        marks.pop(next(iter(marks)))
    state.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(marks))
    return name


def resolve_mark(state: Path, value: str | None) -> float:
    if value is None:
        return 0.0
    path = state / MARKS_FILE
    marks: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    if value in marks:
        return float(marks[value])
    try:
        return float(value)
    except ValueError:
        raise VerifyError(f"no mark {value!r} (known: {', '.join(marks) or 'none'}); "
                          "'siptwin mark NAME' records one") from None


# ---------------------------------------------------------------------------- judging


def _glob(pattern: str, value: Any) -> bool:
    return value is not None and fnmatch.fnmatchcase(str(value).lower(), str(pattern).lower())


def _user(uri: str) -> str:
    return uri.split(":", 1)[-1].split("@", 1)[0] if "@" in uri else ""


def matches(record: dict[str, Any], seen: dict[str, Any], match: dict[str, str]) -> bool:
    if record.get("method", "INVITE") != match.get("method", "INVITE"):
        return False
    for key, pattern in match.items():
        if key == "method":
            continue
        if key in ("from", "to"):
            uri = record.get(f"{key}_uri") or ""
            if not (_glob(pattern, uri) or _glob(pattern, _user(uri))):
                return False
        elif key == "domain":
            name = record.get("domain_name") or ""
            if not (_glob(pattern, name) or _glob(pattern, name.removesuffix(".sip.twilio.com"))):
                return False
        elif key == "host":
            if not _glob(pattern, seen.get("host")):
                return False
        elif not _glob(pattern, record.get(key)):
            return False
    return True


def judge_call(record: dict[str, Any], seen: dict[str, Any],
               expect: dict[str, Any]) -> list[Failure]:
    failures: list[Failure] = []
    where = f"call {record['call_id']}"
    for key in ("status", "transport", "region", "username", "final_status"):
        if key in expect and not _glob(str(expect[key]), record.get(key)):
            failures.append(Failure("call-record-mismatch", f"{where}: {key}", expect[key],
                                    record.get(key)))
    if "host" in expect and not _glob(expect["host"], seen.get("host")):
        failures.append(Failure("received-mismatch", f"{where}: Request-URI host", expect["host"],
                                seen.get("host")))
    headers = {k.lower(): v for k, v in (seen.get("headers") or {}).items()}
    for name, pattern in (expect.get("headers") or {}).items():
        value = headers.get(name.lower())
        if value is None or not fnmatch.fnmatchcase(value, str(pattern)):
            failures.append(Failure("header-mismatch", f"{where}: header {name}", pattern, value))
    for name in expect.get("absent_headers") or []:
        if name.lower() in headers:
            failures.append(Failure("header-mismatch", f"{where}: header {name} must be absent",
                                    None, headers[name.lower()]))
    if "codecs" in expect:
        missing = [c for c in expect["codecs"] if c not in seen.get("codecs", [])]
        if missing:
            failures.append(Failure("received-mismatch", f"{where}: codecs offered",
                                    expect["codecs"], seen.get("codecs")))
    ids = [f["id"] for f in record.get("findings", [])]
    wanted = expect.get("findings")
    if wanted == "none" and ids:
        failures.append(Failure("unexpected-finding", f"{where}: no finding expected", [], ids))
    elif isinstance(wanted, list) and [i for i in wanted if i not in ids]:
        failures.append(Failure("finding-missing", f"{where}: diagnostic findings", wanted, ids))
    for unwanted in expect.get("no_findings") or []:
        hits = [f["id"] for f in record.get("findings", [])
                if unwanted in (f["id"], f.get("severity"))]
        if hits:
            failures.append(Failure("unexpected-finding", f"{where}: no {unwanted} finding",
                                    [], hits))
    return failures


def verify(expectations: list[Expectation], records: list[dict[str, Any]]) -> list[ItemResult]:
    decoded = []
    for record in records:
        call = call_from_record(record)
        decoded.append((record, received(call), call))
    results = []
    for i, expectation in enumerate(expectations):
        began = time.perf_counter()
        result = ItemResult(f"verify/{i + 1:02d}", "recorded", expectation.name, "verify",
                            ["siptwin verify"])
        found = [(r, s, c) for r, s, c in decoded if matches(r, s, expectation.match)]
        count = len(found)
        if count < expectation.minimum or (expectation.maximum is not None
                                           and count > expectation.maximum):
            wanted = {"min": expectation.minimum, "max": expectation.maximum}
            result.failures.append(Failure("call-count-mismatch", "calls matching "
                                           f"{expectation.match or 'anything'}", wanted, count))
        for record, seen, _ in found:
            result.failures += judge_call(record, seen, expectation.expect)
        result.outcome = "failed" if result.failures else "passed"
        result.messages = [
            {"at": t.at, "direction": "in" if t.direction == "out" else "out",
             "first_line": t.first_line, "text": t.data.decode("utf-8", "replace")}
            for _, _, call in found for t in call.trace]
        result.calls = [{k: v for k, v in r.items() if k not in ("trace", "findings")}
                        for r, _, _ in found]
        result.findings = [{"call_id": r["call_id"], **f} for r, _, _ in found
                           for f in r.get("findings", [])]
        result.duration = time.perf_counter() - began
        results.append(result)
    return results


# ---------------------------------------------------------------------------- output


def write_junit(results: list[ItemResult], path: Path, source: str) -> None:
    failed = sum(1 for r in results if r.outcome == "failed")
    suite = ElementTree.Element("testsuite", name="siptwin verify", tests=str(len(results)),
                                failures=str(failed), errors="0")
    for result in results:
        case = ElementTree.SubElement(suite, "testcase", classname=source, name=result.title,
                                      time=f"{result.duration:.3f}")
        if result.failures:
            first = result.failures[0]
            failure = ElementTree.SubElement(case, "failure", type=first.kind,
                                             message=f"{first.kind}: {first.message}")
            failure.text = "\n".join(
                f"{f.kind}: {f.message}\n  expected: {f.expected!r}\n  actual:   {f.actual!r}"
                for f in result.failures)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ElementTree.Element("testsuites")
    root.append(suite)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_report(results: list[ItemResult], path: Path) -> Path:
    from ..report.render import render_report

    with tempfile.TemporaryDirectory(prefix="siptwin-verify-") as folder:
        for i, result in enumerate(results):
            (Path(folder) / f"{i:04d}.json").write_text(json.dumps(result.as_record(), default=str))
        return render_report(Path(folder), path)


def summary_lines(results: list[ItemResult]) -> list[str]:
    lines = []
    for result in results:
        mark_ = "PASS" if result.outcome == "passed" else "FAIL"
        lines.append(f"{mark_}  {result.title}  ({len(result.calls)} call(s))")
        for failure in result.failures:
            lines.append(f"      {failure.kind}: {failure.message}: expected {failure.expected!r}, "
                         f"got {failure.actual!r}")
    passed = sum(1 for r in results if r.outcome == "passed")
    lines.append(f"siptwin verify: {passed} of {len(results)} expectations met")
    return lines
