"""Scenario actions that hand the call to a real peer: ``sipp`` and ``pbx``.

``sipp`` runs a SIPp XML file (ours under ``harness/sipp/`` or a vendor's own) against the
item's region node with ``-key domain <host>``; ``pbx`` starts a customer device (Kamailio as
an SBC, baresip as a desk phone, or any device given as commands or a container:
devices.py) configured for the node and the domain host and triggers one call through it;
a command or container device whose call fails is named by what the twin decided
(:func:`failed_call_kind`). Both find the twin's call records by domain afterwards, so every
existing twin-side expectation (``call``, ``webhook``, ``status_callbacks``) works; ``then.sipp`` /
``then.pbx`` judge the peer's exit and counters, ``then.received`` what the twin saw on the
wire (host form, region, codecs offered, X- headers, digest uri, ACK/BYE).

Kept apart from engine.py on purpose: the engine calls :func:`render_params`, :func:`perform`
and :func:`judge` only.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from pathlib import Path
from typing import Any

from ..model.calls import Call
from ..model.codes import CallStatus, Stage
from ..sip.errors import SipParseError
from ..sip.message import Response, parse_datagram
from ..ua.client import SipExchange
from .devices import CommandDevice, ContainerDevice
from .outcome import Environment, Failure, StepOutcome
from .pbx import DEVICES, DeviceError, DeviceRun, Target, received, trigger
from .sipp import PeerMissing, run_sipp

ACTIONS = ("sipp", "pbx")
SCRIPTED = ("command", "container")  # devices whose call command must exit 0


async def perform(action: str, params: dict[str, Any], node: tuple[str, int],
                  context: dict[str, Any], env: Environment) -> StepOutcome:
    from .scenario import ScenarioError

    host = params.get("host", context["host"])
    auth = params.get("auth") or {}
    began = time.time()
    try:
        if action == "sipp":
            run = await asyncio.to_thread(
                run_sipp, node, params.get("scenario", "uac_auth.xml" if auth else "uac.xml"),
                host=host, service=str(params.get("service", "1000")),
                username=auth.get("username"), password=auth.get("password"),
                transport=params.get("transport", "udp"), calls=int(params.get("calls", 1)),
                rate=params.get("rate"), keys={k: str(v) for k, v in (params.get("keys") or {}).items()},
                local_ip=_caller(env, params.get("source", "127.0.0.1")),
                recv_timeout=float(params.get("recv_timeout", 5.0)),
                timeout=float(params.get("timeout", 20.0)))
            detail = {"sipp": run.as_record()}
        else:
            target = _target(env, node, context, params, host, auth)
            device = await asyncio.to_thread(_run_device, params, target, env)
            detail = {"pbx": device.as_record()}
    except PeerMissing as err:
        raise ScenarioError(str(err)) from None  # broken, with the reason, never skipped
    calls = await settled_calls(env, context["domain_name"], began)
    messages = [SipExchange(t.at, "in" if t.direction == "out" else "out", t.data)
                for call in calls for t in call.trace]
    detail["calls"] = [c.call_id for c in calls]
    responses = _responses(calls[-1]) if calls else []
    return StepOutcome(action, calls[-1].call_id if calls else "", responses, messages,
                       detail=detail)


def _target(env: Environment, node: tuple[str, int], context: dict[str, Any],
            params: dict[str, Any], host: str, auth: dict[str, Any]) -> Target:
    twin = env.twin
    region = params.get("region", context["region"])
    tls = twin.nodes[region].addresses.get("tls")
    dns = twin.dns_address
    certificate = twin.certificate
    return Target(node[0], node[1], host, auth.get("username"), auth.get("password"),
                  params.get("transport", "udp"), region=region,
                  tls_port=tls[1] if tls else None, dns_addr=dns[0] if dns else None,
                  dns_port=dns[1] if dns else None,
                  ca_file=str(certificate.resolve()) if certificate else None)


def _run_device(params: dict[str, Any], target: Target, env: Environment) -> DeviceRun:
    """Start the step's device, place one call through it, always stop it."""
    from .scenario import ScenarioError

    kind = params["device"]
    service = str(params.get("service", "1000"))
    device: Any
    if kind == "command":
        device = CommandDevice(target, params, service=service, context=params.get("context"))
    elif kind == "container":
        client, network = _docker(env)
        device = ContainerDevice(target, params, client, network, service=service,
                                 context=params.get("context"))
    elif kind in DEVICES:
        options: dict[str, Any] = {}
        if kind == "kamailio":
            device_options: dict[str, Any] = {}
            if params.get("header"):
                (name, value), = params["header"].items()
                device_options["header"] = (name, str(value))
            if params.get("config"):  # the customer's own configuration, same tokens
                device_options["config"] = Path(params["config"]).resolve()
            options["device_options"] = device_options
        if kind == "baresip":
            options["seconds"] = float(params.get("seconds", 3))
        return trigger(kind, target, service, **options)
    else:
        raise ScenarioError(f"unknown pbx device {kind!r}; known: command, container, "
                            f"{', '.join(DEVICES)}")
    try:
        device.start()
    except DeviceError as err:
        raise ScenarioError(f"the {kind} device did not start: {err}") from None
    try:
        return device.call(service)
    finally:
        device.stop()


def _docker(env: Environment) -> tuple[Any, str | None]:
    """The docker backend's own engine and network, else the engine DOCKER_HOST names."""
    twin = env.twin
    engine = getattr(twin, "engine", None)
    if engine is not None:
        return engine.client(), getattr(twin, "network_name", None)
    import docker

    from .scenario import ScenarioError

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        raise ScenarioError(f"device container needs a docker engine (DOCKER_HOST): {err}") from None
    return client, None


def _responses(call: Call) -> list[Response]:
    """The responses the twin sent to the call's INVITEs, in order (``then.final`` etc.)."""
    out: list[Response] = []
    for entry in call.trace:
        if entry.direction != "out":
            continue
        try:
            message = parse_datagram(entry.data)
        except SipParseError:
            continue
        if isinstance(message, Response) and (message.headers.get("CSeq") or "").endswith("INVITE"):
            out.append(message)
    return out


# A device's commands are rendered by the device, with its own variables (devices.VARIABLES)
# on top of the scenario's.
DEVICE_TEMPLATES = ("start", "call", "stop", "ready", "env", "image", "command", "volumes")


def render_params(step: Any, context: dict[str, Any]) -> dict[str, Any]:
    from .scenario import render

    if step.action != "pbx" or step.params.get("device") not in SCRIPTED:
        return dict(render(step.params, context))
    deferred = {k: v for k, v in step.params.items() if k in DEVICE_TEMPLATES}
    rendered = render({k: v for k, v in step.params.items() if k not in deferred}, context)
    return {**rendered, **deferred, "context": context}


def calls_of(env: Environment, domain_name: str, since: float) -> list[Call]:
    """The twin's call records for the item's domain since the step began, oldest first."""
    found = [c for c in env.twin.calls.all()
             if c.created_at >= since - 0.5 and (c.domain_name or "").lower() == domain_name.lower()]
    return sorted(found, key=lambda c: c.created_at)


SETTLE_LIMIT = 0.2  # the longest wait for the twin's last trace entries after a peer exits
_OPEN = (CallStatus.RECEIVED, CallStatus.RINGING, CallStatus.IN_PROGRESS)


async def settled_calls(env: Environment, domain_name: str, since: float) -> list[Call]:
    """:func:`calls_of` once the twin has handled what the peer sent before it exited (the
    200 to the twin's BYE, the ACK of a final response): polled, at most SETTLE_LIMIT."""
    deadline = time.monotonic() + SETTLE_LIMIT
    while True:
        calls = calls_of(env, domain_name, since)
        if (calls and all(_settled(c) for c in calls)) or time.monotonic() >= deadline:
            return calls
        await asyncio.sleep(0.01)


def _settled(call: Call) -> bool:
    if call.status in _OPEN or not call.trace:
        return False
    last = call.trace[-1]
    if last.direction == "in":
        return True
    # Our last word waits for no answer only if it is a response to a non-INVITE request:
    # a request (BYE) awaits its response, an INVITE's final response its ACK.
    first = last.first_line
    if not first.startswith("SIP/2.0"):
        return False
    try:
        cseq = parse_datagram(last.data).headers.get("CSeq") or ""
    except SipParseError:
        return True
    return not cseq.endswith("INVITE")


def judge(outcome: StepOutcome, expect: dict[str, Any], env: Environment) -> list[Failure]:

    failures: list[Failure] = []
    detail = outcome.detail
    ran = detail.get("pbx") or {}
    if ran.get("device") in SCRIPTED and "exit" not in expect.get("pbx", {}) and ran["exit"] != 0:
        call = env.twin.calls.get(outcome.call_id) if outcome.call_id else None
        kind, why = failed_call_kind(call)
        failures.append(Failure(kind, f"the device's call command failed ({why})", {"exit": 0},
                                {"exit": ran["exit"], "output": ran.get("output_tail", "")[-600:]}))
    for key in ACTIONS:
        if key not in expect:
            continue
        ran = detail.get(key)
        if ran is None:
            failures.append(Failure("peer-not-run", f"then.{key} needs a {key} action", key, None))
            continue
        for name, wanted in expect[key].items():
            if ran.get(name) != wanted:
                failures.append(Failure("peer-mismatch", f"{key} {name}", wanted,
                                        {name: ran.get(name), "output": ran.get("output_tail", "")[-600:]}))
    if "received" in expect:
        call = env.twin.calls.get(outcome.call_id) if outcome.call_id else None
        if call is None:
            return [*failures, Failure("call-record-mismatch", "the twin received no call",
                                       expect["received"], None)]
        seen = received(call)
        for name, wanted in expect["received"].items():
            failures += _compare(name, wanted, seen.get(name))
    return failures


# Why a device's call failed, by what the twin decided about it (the Stage that refused it).
REFUSAL_KINDS = {
    Stage.DIGEST_CREDENTIALS_VALID: "authentication-failed",
    Stage.SOURCE_IP_IN_ACL: "source-not-allowed",
    Stage.DOMAIN_EXISTS: "unknown-domain",
    Stage.CALL_AUTHENTICATION_MAPPED: "no-authentication-mapped",
    Stage.SECURE_DOMAIN_USES_TLS: "secure-domain-needs-tls",
    Stage.MEDIA_OFFER_ACCEPTABLE: "media-refused",
}


def failed_call_kind(call: Call | None) -> tuple[str, str]:
    """(failure kind, reason) for a device call that exited non-zero."""
    if call is None:
        return "no-call-received", "no INVITE for the domain reached the twin"
    if call.status == CallStatus.CHALLENGED:
        return "challenge-unanswered", "the twin's 407 was never answered with credentials"
    if call.decided_by:
        answer = f"answered {call.final_status}" if call.final_status else "stayed silent"
        error = call.alerts[0] if call.alerts else None
        code = f" ({error.code} {error.message})" if error else ""
        stage = next((s for s in Stage if s.value == call.decided_by), None)
        kind = REFUSAL_KINDS.get(stage, "call-rejected") if stage else "call-rejected"
        return kind, f"the twin {answer}{code} at {call.decided_by}"
    return "device-call-failed", f"the twin's call ended {call.status}"


def _compare(name: str, wanted: Any, actual: Any) -> list[Failure]:

    if isinstance(wanted, list):  # codecs, methods: every wanted one present
        missing = [w for w in wanted if w not in (actual or [])]
        ok = not missing
    elif isinstance(wanted, dict):  # headers: name -> glob
        ok = all(isinstance(actual, dict) and actual.get(k) is not None and
                 fnmatch.fnmatchcase(str(actual[k]), str(v)) for k, v in wanted.items())
    elif isinstance(wanted, str):
        ok = actual is not None and fnmatch.fnmatchcase(str(actual), wanted)
    else:
        ok = actual == wanted
    return [] if ok else [Failure("received-mismatch", f"the twin received {name}", wanted, actual)]


def _caller(env: Any, source: str) -> str:
    """Where a scenario's loopback source is for this backend (netns and docker move callers)."""
    mapper = getattr(env.twin, "caller_address", None)
    return mapper(source) if mapper is not None else source
