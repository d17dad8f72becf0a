"""Runs one scenario in one region against a running twin and judges what happened.

The outcome separates *failed* (the twin broke an expectation: a named failure kind with
expected and actual) from *broken* (the harness itself could not run the item: provisioning
refused, a template error, a socket that would not bind).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import secrets
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from twilio.request_validator import RequestValidator

from ..regions.catalogue import Region
from ..sip.errors import SipParseError
from ..sip.message import Response, parse_datagram
from ..sip.sdp import make_offer
from ..sip.transaction import new_branch
from ..twin.config import Twin
from ..ua.client import DEFAULT_OFFER, Auth, SipClient, SipExchange
from . import faults, interop
from .findings import findings_records, judge_findings
from .fixtures import Shared, plan_key
from .outcome import Environment, Failure, StepOutcome
from .provision import (
    DomainPlan,
    Provisioned,
    SubAccount,
    close_subaccount,
    create_subaccount,
    deprovision,
    provision,
)
from .receiver import AppBehaviour, AppSlot, Seat
from .scenario import Scenario, ScenarioError, Step, render, unique_label

DEFAULT_WAIT = 5.0


@dataclass
class ItemResult:
    scenario: str
    region: str
    title: str
    feature: str
    pins: list[str]
    outcome: str = "passed"  # passed, failed, broken, skipped
    failures: list[Failure] = field(default_factory=list)
    error: str | None = None  # for broken items
    messages: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0
    fidelity: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)  # diagnostics, per call
    peers: list[dict[str, Any]] = field(default_factory=list)  # sipp / pbx runs (interop.py)

    def as_record(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "region": self.region, "title": self.title,
            "feature": self.feature, "pins": self.pins, "outcome": self.outcome,
            "failure_kind": self.failures[0].kind if self.failures else None,
            "failures": [f.as_record() for f in self.failures], "error": self.error,
            "messages": self.messages, "webhooks": self.webhooks, "calls": self.calls,
            "findings": self.findings, "duration": round(self.duration, 3), "fidelity": self.fidelity,
            "peers": self.peers,
        }


async def run_item(scenario: Scenario, region_id: str, env: Environment, *,
                   settings_applied: bool = False) -> ItemResult:
    """Run one item; ``settings_applied``: its batch (:func:`run_batch`) has already put the
    scenario's ``given.settings`` in force and restores them, so the item leaves them alone."""
    twin = env.twin
    result = ItemResult(scenario.id, region_id, scenario.title, scenario.feature, scenario.pins)
    began = time.perf_counter()
    saved = twin.fidelity
    slot: AppSlot | None = None
    shared: str | None = None  # the plan of a domain shared from item to item (fixtures.py)
    held: Shared | None = None  # that domain, while this item holds it
    provisioned: Provisioned | None = None
    sub_provisioned: Provisioned | None = None
    subaccount: SubAccount | None = None
    exchanges: list[SipExchange] = []
    call_ids: list[str] = []
    context: dict[str, Any] | None = None
    try:
        region = twin.catalogue[region_id]
        given = scenario.given
        settings = given.get("settings") or {}
        if settings and not settings_applied:
            twin.set_fidelity(saved.with_overrides(settings))
        result.fidelity = twin.fidelity.as_record()
        slot = env.receiver.slot()
        context = _context(region, twin, env, slot, given)
        shared = plan_key(scenario)
        held = env.domains.take(shared) if shared else None
        if held is not None:  # the worker's domain of this plan: its name, before any render
            provisioned = held.provisioned
            _name_domain(context, region, provisioned.domain_name.removesuffix(".sip.twilio.com"))
            env.receiver.take_seat(held.seat, slot)
        context["scenario_dir"] = str(scenario.path.parent.resolve())
        app = render(given.get("app") or {}, context)  # documents may name {{ app_url }}
        slot.voice = _behaviour(app)
        slot.fallback = _behaviour(app["fallback"]) if "fallback" in app else None
        if given.get("subaccount") is not None:
            spec = render(given["subaccount"], context)
            subaccount = await env.sdk_call(
                create_subaccount, spec.get("friendly_name") or unique_label("sub"))
            context.update(subaccount_sid=subaccount.sid)
            context["signing_tokens"][subaccount.sid] = subaccount.auth_token
        if given.get("domain", {}) is not None:
            if held is None and shared:  # the plan's first domain, or all are lent right now
                seat = env.receiver.seat()
                provisioned = await _provision(twin, given.get("domain") or {}, context, app,
                                               env, seat)
                held = Shared(provisioned, seat)
                env.receiver.take_seat(seat, slot)
                env.domains.provisioned += 1
            elif held is None:
                provisioned = await _provision(twin, given.get("domain") or {}, context, app,
                                               env, slot)
            assert provisioned is not None
            context.update(domain_sid=provisioned.domain_sid, acl_sid=provisioned.acl_sid,
                           credential_list_sid=provisioned.credential_list_sid,
                           acl_entry_sid=(provisioned.acl_entry_sids or [None])[0])
        if given.get("subdomain") is not None:
            if provisioned is None:
                raise ScenarioError("given.subdomain needs given.domain (its parent)")
            sub_provisioned = await _provision(twin, given["subdomain"], context, app, env, slot,
                                               parent=context["domain"])
            label = sub_provisioned.domain_name.removesuffix(".sip.twilio.com")
            context.update(subdomain=label, subdomain_name=sub_provisioned.domain_name,
                           subhost=f"{label}.sip.{region.id}.twilio.com",
                           subdomain_sid=sub_provisioned.domain_sid)
        for step in scenario.steps:
            if step.pause:
                await asyncio.sleep(step.pause)
            params = interop.render_params(step, context)
            expect = render(step.expect, context)
            outcome = await _perform(step, params, expect, region, env, context)
            if step.action == "phone":  # documents may now name {{ phone_port }}
                app = render(given.get("app") or {}, context)
                slot.voice = _behaviour(app)
            exchanges.extend(outcome.messages)
            call_ids.append(outcome.call_id)
            if outcome.detail:
                result.peers.append(outcome.detail)
            # A peer's own failure (its call command failed) is the cause: it comes first.
            result.failures.extend(interop.judge(outcome, expect, env))
            result.failures.extend(await _judge(outcome, expect, twin, slot, region,
                                                context["signing_tokens"]))
            result.failures.extend(_judge_phones(expect.get("phones"), context["phones"]))
            if result.failures:
                break
    except ScenarioError as err:
        result.outcome, result.error = "broken", str(err)
    except Exception as err:  # the harness could not run the item
        result.outcome = "broken"
        result.error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=6)}"
    finally:
        for phone in (context.get("phones", []) if context is not None else []):
            await phone.close()
        if not settings_applied:
            twin.set_fidelity(saved)
        await faults.restore_all(twin, env.faults)
        if held is not None:
            env.receiver.leave_seat(held.seat)
            if result.outcome != "broken":
                env.domains.give_back(shared, held)  # unchanged: such items change nothing
                provisioned = None
        for created in (sub_provisioned, provisioned):  # a sub-domain before its parent
            if created is not None:
                await _cleanup(env, created, result)
        if subaccount is not None:
            try:
                await env.sdk_call(close_subaccount, subaccount)
            except Exception as err:
                if result.outcome == "passed":
                    result.outcome, result.error = "broken", f"clean-up failed: {err}"
        if slot is not None:
            result.webhooks = [r.as_record() for r in slot.requests]
            env.receiver.release(slot)
    if result.outcome != "broken" and result.failures:
        result.outcome = "failed"
    result.messages = [
        {"at": e.at, "direction": e.direction, "first_line": e.first_line,
         "text": e.data.decode("utf-8", "replace")}
        for e in sorted(exchanges, key=lambda e: e.at)
    ]
    result.calls = [_call_record(twin, cid) for cid in call_ids if twin.calls.get(cid)]
    result.findings = _findings(twin, call_ids)
    result.duration = time.perf_counter() - began
    return result


class _LoopbackCallers:
    """Backends that run on loopback keep scenario addresses as written."""

    @staticmethod
    def caller_address(source: str) -> str:
        return source

    @staticmethod
    def acl_entry(entry: str) -> str:
        return entry


def _backend(twin: Any) -> Any:
    return twin if hasattr(twin, "caller_address") else _LoopbackCallers


def _behaviour(spec: dict[str, Any]) -> AppBehaviour:
    behaviour = AppBehaviour()
    for key in ("twiml", "status", "delay", "body", "content_type"):
        if key in spec:
            setattr(behaviour, key, spec[key])
    return behaviour


def _context(region: Region, twin: Twin, env: Environment, slot: AppSlot,
             given: dict[str, Any]) -> dict[str, Any]:
    domain = given.get("domain") or {}
    node = twin.nodes[region.id].addresses["udp"]
    context = {
        "region": region.id, "edge": region.edge, "interconnect": list(region.interconnect),
        "node": region.address, "node_port": node[1] if node else 5060,
        "app_url": env.receiver.url(slot, "voice"),
        "fallback_url": env.receiver.url(slot, "fallback"),
        "status_url": env.receiver.url(slot, "status"),
        "unique": unique_label,
        "source": _backend(twin).caller_address("127.0.0.1"),  # the default caller
        "branch": new_branch,
        "new_call_id": lambda: f"{secrets.token_hex(8)}@siptwin",
        # Webhooks are signed with the token of the account that owns the called domain.
        "signing_tokens": {twin.account_sid: twin.auth_token},
        "phones": [],  # the item's phones (the phone action), closed with the item
        "phone_port": 0,  # the SIP port of the latest phone
    }
    _name_domain(context, region, unique_label(domain.get("label", "acme")))
    return context


def _name_domain(context: dict[str, Any], region: Region, label: str) -> None:
    context.update(domain=label, host=f"{label}.sip.{region.id}.twilio.com",
                   domain_name=f"{label}.sip.twilio.com")


async def _provision(twin: Twin, spec: dict[str, Any], context: dict[str, Any],
                     app: dict[str, Any], env: Environment, slot: AppSlot | Seat,
                     parent: str | None = None) -> Provisioned:
    """The item's domain, or (``parent`` given) its sub-domain ``{label}.{parent}``, its
    webhooks at the item's ``slot`` or at the ``seat`` of a domain to share (fixtures.py)."""
    spec = render(spec, context)
    voice_url = spec.get("voice_url") or env.receiver.url(slot, "voice")
    owner = None
    if spec.get("owner") == "subaccount":
        owner = context.get("subaccount_sid")
        if owner is None:
            raise ScenarioError("owner: subaccount needs given.subaccount")
    plan = DomainPlan(
        label=f"{spec.get('label', 'sub')}.{parent}" if parent else context["domain"],
        account_sid=owner, voice_url=voice_url, voice_method=spec.get("voice_method", "POST"),
        voice_fallback_url=env.receiver.url(slot, "fallback") if "fallback" in app else None,
        voice_status_callback_url=(env.receiver.url(slot, "status")
                                   if app.get("status_callback", True) else None),
        secure=spec.get("secure", False), sip_registration=spec.get("sip_registration", False),
        acl=[_backend(twin).acl_entry(e) for e in spec.get("acl", [])],
        credentials=[tuple(c) for c in spec.get("credentials", [])],
        registration_credentials=[tuple(c) for c in spec.get("registration_credentials", [])],
    )
    return await env.sdk_call(provision, plan)


async def _perform(step: Step, params: dict[str, Any], expect: dict[str, Any], region: Region,
                   env: Environment, context: dict[str, Any]) -> StepOutcome:
    twin = env.twin
    target_region = twin.catalogue[params.get("region", region.id)]
    transport = params.get("transport", "udp")
    node = twin.nodes[target_region.id].addresses[transport]
    if node is None:
        raise ScenarioError(f"region {target_region.id} does not listen on {transport}")
    # A backend whose callers do not live on loopback (netns) says where this source is.
    source = _backend(twin).caller_address(params.get("source", "127.0.0.1"))
    wait = expect.get("no_answer_within") or params.get("wait") or DEFAULT_WAIT
    auth = Auth(**params["auth"]) if "auth" in params else None
    headers = list((params.get("headers") or {}).items())
    if step.action == "raw":
        return await _raw(params, node, transport, source, wait)
    if step.action == "rest":
        return await _rest(params, env, context)
    if step.action == "fault":
        target = params.get("region", region.id)
        line = await faults.inject(twin, target, params, env.faults)
        return StepOutcome("fault", "", [], [SipExchange(time.time(), "out", line.encode())])
    if step.action == "phone":
        return await _phone(params, node, transport, source, context)
    if step.action in interop.ACTIONS:  # a real peer places the call (interop.py)
        return await interop.perform(step.action, params, node, context, env)
    async with SipClient(source, transport) as client:
        if step.action == "invite":
            call = await client.invite(
                node[0], node[1], params.get("to", f"sip:1000@{context['host']}"), auth=auth,
                from_uri=params.get("from"), headers=headers,
                sdp=params["sdp"].encode() if isinstance(params.get("sdp"), str) else
                (None if "sdp" in params else DEFAULT_OFFER),
                hold=params.get("hold", 0.0), hang_up=params.get("hang_up", True),
                wait_final=wait, max_forwards=params.get("max_forwards", 70),
                cancel_after=params.get("cancel_after"),
                reinvites=[_crlf(body).encode() for body in params.get("reinvites", [])],
            )
            if expect.get("ended_by_twin") and not call.ended_by_remote:
                await client.wait_remote_bye(call.call_id, 5.0)
            return StepOutcome("invite", call.call_id, call.responses, call.messages, call)
        uri = params.get("uri", f"sip:{context['host']}")
        method = step.action.upper()
        if method == "REGISTER":
            contact = params.get("contact", f"<sip:{params.get('auth', {}).get('username', 'u')}@{source}>")
            headers = [("Contact", contact), *headers]
            if "expires" in params:
                headers.append(("Expires", str(params["expires"])))
        responses = await client.request(method, node[0], node[1], uri, headers=headers, auth=auth,
                                         to_uri=params.get("to"))
        last = client.last
        assert last is not None
        return StepOutcome(step.action, last.call_id, responses, last.messages)


async def _phone(params: dict[str, Any], node: tuple[str, int], transport: str, source: str,
                 context: dict[str, Any]) -> StepOutcome:
    """Start a phone that stays up for the rest of the item (and REGISTER it as ``user`` on
    the item's domain unless ``register: false``)."""
    phone = SipClient(source, transport)
    await phone.start()
    context["phones"].append(phone)
    context["phone_port"] = phone.local_port
    # The SDP names a port nothing reads: the phone's audio is not checked by scenarios.
    phone.answer_calls(make_offer(source, 40000 + len(context["phones"]) * 2, 1),
                       status=params.get("answer", 200), after=float(params.get("after", 0.0)))
    if not params.get("register", True):
        return StepOutcome("phone", "", [], [])
    user = params["user"]
    auth = Auth(**params["auth"]) if "auth" in params else None
    responses = await phone.request(
        "REGISTER", node[0], node[1], f"sip:{context['host']}", auth=auth,
        to_uri=f"sip:{user}@{context['host']}",
        headers=[("Contact", f"<sip:{user}@{source}:{phone.local_port}>"), ("Expires", "600")])
    last = phone.last
    assert last is not None
    return StepOutcome("phone", last.call_id, responses, last.messages)


def _judge_phones(expect: dict[str, Any] | None, phones: list[SipClient]) -> list[Failure]:
    if not expect:
        return []
    calls = [call for phone in phones for call in phone.incoming]
    seen = {"rang": len(calls), "answered": sum(c.answered for c in calls),
            "cancelled": sum(c.cancelled for c in calls)}
    failures = [Failure("phone-mismatch", f"phones: {key}", expect[key], seen[key])
                for key in ("rang", "answered", "cancelled") if key in expect
                and expect[key] != seen[key]]
    for name, pattern in (expect.get("headers") or {}).items():
        values = [c.invite.headers.get(name) or "" for c in calls]
        if not any(fnmatch.fnmatchcase(value, pattern) for value in values):
            failures.append(Failure("phone-mismatch", f"phones: INVITE header {name}",
                                    pattern, values))
    return failures


async def _raw(params: dict[str, Any], node: tuple[str, int], transport: str, source: str,
               wait: float) -> StepOutcome:
    text = params["message"].replace("\r\n", "\n").replace("\n", "\r\n")
    data = text.encode("utf-8")
    messages = [SipExchange(time.time(), "out", data)]
    responses: list[Response] = []
    loop = asyncio.get_running_loop()
    if transport != "udp":
        raise ScenarioError("raw messages are sent over udp")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    try:
        await _send_datagram(sock, data, node)
        deadline = loop.time() + wait
        while loop.time() < deadline:
            try:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), deadline - loop.time())
            except TimeoutError:
                break
            messages.append(SipExchange(time.time(), "in", reply))
            try:
                message = parse_datagram(reply)
            except SipParseError:
                continue
            if isinstance(message, Response):
                responses.append(message)
                if message.status >= 200:
                    break
    finally:
        sock.close()
    call_id = ""
    with contextlib.suppress(SipParseError):
        call_id = parse_datagram(data).headers.get("Call-ID") or ""
    return StepOutcome("raw", call_id, responses, messages)


async def _send_datagram(sock: socket.socket, data: bytes, address: tuple[str, int]) -> None:
    """``loop.sock_sendto`` on any loop (uvloop has none): a datagram to loopback is sent at
    once unless the socket's buffer is full, then when it can take it."""
    while True:
        try:
            sock.sendto(data, address)
            return
        except BlockingIOError:
            writable = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().add_writer(sock.fileno(), writable.set_result, None)
            try:
                await writable
            finally:
                asyncio.get_running_loop().remove_writer(sock.fileno())


async def _cleanup(env: Environment, provisioned: Provisioned, result: ItemResult) -> None:
    try:
        await env.sdk_call(deprovision, provisioned)
    except Exception as err:  # a failed clean-up breaks later items, so say so here
        if result.outcome == "passed":
            result.outcome, result.error = "broken", f"clean-up failed: {err}"


async def _rest(params: dict[str, Any], env: Environment, context: dict[str, Any]) -> StepOutcome:
    """A change through the REST API, as the user's provisioning code would make it: in the
    main account, or (``account: subaccount``) in the item's sub-account, with the main
    account's credentials as a parent account may."""
    twin = env.twin
    account = twin.account_sid
    if params.get("account") == "subaccount":
        account = context.get("subaccount_sid", "")
        if not account:
            raise ScenarioError("rest account: subaccount needs given.subaccount")
    url = f"{twin.api_url}/2010-04-01/Accounts/{account}{params['path']}"
    data = {k: str(v) for k, v in (params.get("data") or {}).items()}
    response = await env.sdk_call(lambda sdk: sdk.request(params["method"], url,
                                                          data=data or None))
    code = None
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        body = json.loads(response.text)
        code = body.get("code")
        if 200 <= response.status_code < 300 and body.get("sid"):
            context["created_sid"] = body["sid"]  # what a later step may name or delete
    line = (f"{params['method']} {params['path']} -> HTTP {response.status_code}"
            + (f" (code {code})" if code else ""))
    return StepOutcome("rest", "", [], [SipExchange(time.time(), "out", line.encode())],
                       http_status=response.status_code, error_code=code)


# ---------------------------------------------------------------------------- judging


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _judge_sdp(what: str, response: Response | None, fragments: list[str] | None) -> list[Failure]:
    body = response.body.decode("utf-8", "replace") if response is not None else ""
    return [Failure("sdp-mismatch", f"{what}: SDP must contain {fragment!r}", fragment, body)
            for fragment in fragments or [] if fragment not in body]


async def _judge(outcome: StepOutcome, expect: dict[str, Any], twin: Twin,
                 slot: AppSlot, region: Region,
                 tokens: dict[str, str] | None = None) -> list[Failure]:
    failures: list[Failure] = []
    if "http_status" in expect and outcome.http_status != expect["http_status"]:
        failures.append(Failure("rest-status-mismatch", "REST API status", expect["http_status"],
                                outcome.http_status))
    if "error_code" in expect and outcome.error_code != expect["error_code"]:
        failures.append(Failure("error-code-mismatch", "Twilio error code of the REST answer",
                                expect["error_code"], outcome.error_code))
    statuses = [r.status for r in outcome.responses]
    if "no_answer_within" in expect and statuses:
        failures.append(Failure("unexpected-answer", "expected silence but the twin answered",
                                [], statuses))
    if "responses" in expect and statuses != expect["responses"]:
        kind = "no-response" if not statuses else "unexpected-response"
        failures.append(Failure(kind, "response sequence differs", expect["responses"], statuses))
    final = outcome.responses[-1] if outcome.responses else None
    if "final" in expect and (final is None or final.status != expect["final"]):
        failures.append(Failure("no-response" if final is None else "unexpected-response",
                                "final response differs", expect["final"],
                                final.status if final else None))
    for name, pattern in (expect.get("headers") or {}).items():
        value = _header_anywhere(outcome.responses, name)
        if value is None or not fnmatch.fnmatchcase(value, pattern):
            failures.append(Failure("header-mismatch", f"header {name}", pattern, value))
    for name in expect.get("absent_headers") or []:
        value = _header_anywhere(outcome.responses, name)
        if value is not None:
            failures.append(Failure("header-mismatch", f"header {name} must be absent", None, value))
    if "established" in expect:
        established = outcome.call.established if outcome.call else False
        if established != expect["established"]:
            failures.append(Failure("unexpected-response", "call established", expect["established"],
                                    established))
    failures += _judge_sdp("final response", final, expect.get("sdp_has"))
    if "reinvites" in expect:
        got = outcome.call.reinvites if outcome.call else []
        for index, wanted in enumerate(expect["reinvites"]):
            answer = got[index] if index < len(got) else None
            what = f"re-INVITE {index + 1}"
            if "final" in wanted and (answer is None or answer.status != wanted["final"]):
                failures.append(Failure("unexpected-response", f"{what}: final response",
                                        wanted["final"], answer.status if answer else None))
            failures += _judge_sdp(what, answer, wanted.get("sdp_has"))
    if expect.get("ended_by_twin") and not (outcome.call and outcome.call.ended_by_remote):
        failures.append(Failure("missing-bye", "the twin should have ended the call with BYE",
                                True, False))
    if (expect.get("ended_by_twin") is False and outcome.call is not None
            and outcome.call.ended_by_remote):
        failures.append(Failure("unexpected-bye", "the twin ended the call; the caller should "
                                "have", False, True))
    failures += await _judge_webhooks(expect, twin, slot, tokens or {})
    failures += _judge_call(outcome, expect, twin)
    failures += _judge_findings(outcome, expect, twin)
    return failures


async def _judge_webhooks(expect: dict[str, Any], twin: Twin, slot: AppSlot,
                          tokens: dict[str, str]) -> list[Failure]:
    failures: list[Failure] = []
    if "status_callbacks" in expect:
        wanted = expect["status_callbacks"]
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(slot.of_kind("status")) < len(wanted):
            await asyncio.sleep(0.01)
        got = [r.params.get("CallStatus") for r in slot.of_kind("status")]
        if got != wanted:
            failures.append(Failure("status-callback-mismatch", "status callback events", wanted, got))
    spec = expect.get("webhook")
    if spec is None:
        return failures
    voice = slot.of_kind("voice")
    if spec == "none":
        if voice:
            failures.append(Failure("unexpected-webhook", "no webhook was expected", "none",
                                    [r.params for r in voice]))
        return failures
    if not voice:
        failures.append(Failure("missing-webhook", "the voice webhook was not requested", spec, None))
        return failures
    first = voice[0]
    if "count" in spec and len(voice) != spec["count"]:
        failures.append(Failure("webhook-count", "number of webhook requests", spec["count"], len(voice)))
    wanted = {k: str(v) for k, v in (spec.get("params") or {}).items()}
    for key, pattern in wanted.items():
        value = first.params.get(key)
        if value is None or not fnmatch.fnmatchcase(value, pattern):
            failures.append(Failure("parameter-mismatch", f"webhook parameter {key}", pattern, value))
    for index, params in enumerate(spec.get("requests") or []):
        # the n-th request of the call to the app: the voice URL's, then <Gather>/<Record>
        # actions and redirects, in the order they arrived
        request = voice[index] if index < len(voice) else None
        for key, pattern in params.items():
            value = request.params.get(key) if request is not None else None
            if value is None or not fnmatch.fnmatchcase(value, str(pattern)):
                failures.append(Failure("parameter-mismatch",
                                        f"webhook request {index + 1}: parameter {key}",
                                        str(pattern), value))
    if spec.get("exact"):
        extra = sorted(set(first.params) - set(wanted))
        if extra:
            failures.append(Failure("parameter-mismatch", "unexpected webhook parameters", [], extra))
    for key in spec.get("absent") or []:
        if key in first.params:
            failures.append(Failure("parameter-mismatch", f"webhook parameter {key} must be absent",
                                    None, first.params[key]))
    if spec.get("signature_valid", True):
        # The owner of the called domain signs with its us1 token (scenarios provision their
        # domains in us1): the master's, or a sub-account's.
        token = tokens.get(first.params.get("AccountSid", ""), twin.auth_token)
        signature = first.headers.get("X-Twilio-Signature", "")
        params = first.params if first.method == "POST" else {}
        if not RequestValidator(token).validate(first.url, params, signature):
            failures.append(Failure("signature-invalid", "X-Twilio-Signature does not validate",
                                    "valid", signature or "(missing)"))
    if "fallback" in spec:
        hit = bool(slot.of_kind("fallback"))
        if hit != spec["fallback"]:
            failures.append(Failure("fallback-mismatch", "fallback URL requested", spec["fallback"], hit))
    return failures


def _judge_call(outcome: StepOutcome, expect: dict[str, Any], twin: Twin) -> list[Failure]:
    failures: list[Failure] = []
    call = twin.calls.get(outcome.call_id)
    if "call" in expect:
        if call is None:
            return [Failure("call-record-mismatch", "no call record", expect["call"], None)]
        for key, wanted in expect["call"].items():
            for name, want, actual in _mismatches(key, wanted, getattr(call, key, None)):
                failures.append(Failure("call-record-mismatch", f"call {name}", want, actual))
    if "alerts" in expect:
        codes = [a.code for a in call.alerts] if call else []
        missing = [c for c in expect["alerts"] if c not in codes]
        if missing:
            failures.append(Failure("alert-missing", "alerts on the call", expect["alerts"], codes))
    return failures


def _mismatches(name: str, wanted: Any, actual: Any) -> list[tuple[str, Any, Any]]:
    """Equal as text, or matching ``wanted`` as a glob; a mapping names only the keys it
    checks, at any depth (``call: {media: {srtp: {rejected: 0}}}``)."""
    if isinstance(wanted, dict):
        if not isinstance(actual, dict):
            return [(name, wanted, actual)]
        return [m for key, value in wanted.items()
                for m in _mismatches(f"{name}.{key}", value, actual.get(key))]
    if str(actual) == str(wanted) or (isinstance(actual, str)
                                      and fnmatch.fnmatchcase(actual, str(wanted))):
        return []
    return [(name, wanted, actual)]


def _header_anywhere(responses: list[Response], name: str) -> str | None:
    for response in reversed(responses):
        value = response.headers.get(name)
        if value is not None:
            return value
    return None


def _call_record(twin: Twin, call_id: str) -> dict[str, Any]:
    call = twin.calls.get(call_id)
    assert call is not None
    return {
        "call_id": call.call_id, "sid": call.sid, "region": call.region, "status": call.status,
        "final_status": call.final_status, "decided_by": call.decided_by,
        "domain": call.domain_name, "edge_label": call.edge_label, "source": call.source_ip,
        "transport": call.transport, "username": call.username, "notes": list(call.notes),
        "alerts": [{"code": a.code, "message": a.message} for a in call.alerts],
        "trace": [{"at": t.at, "direction": t.direction, "peer": t.peer, "local": t.local,
                   "first_line": t.first_line} for t in call.trace],
    }


# ---------------------------------------------------------------------------- diagnostics


def _findings(twin: Twin, call_ids: list[str]) -> list[dict[str, Any]]:
    return findings_records(twin, call_ids)


def _judge_findings(outcome: StepOutcome, expect: dict[str, Any],
                    twin: Twin) -> list[Failure]:
    """``then: findings: [id, ...]`` must appear; ``no_findings: [id or severity]`` not."""
    return [Failure(*f) for f in judge_findings(twin, outcome.call_id, expect)]
