"""Scenario actions that hand the call to a real peer: ``sipp`` and ``pbx``.

``sipp`` runs a SIPp XML file (ours under ``harness/sipp/`` or a vendor's own) against the
item's region node with ``-key domain <host>``; ``pbx`` starts a customer device (Kamailio as
an SBC, baresip as a desk phone) configured for the node and the domain host and triggers one
call through it. Both find the twin's call records by domain afterwards, so every existing
twin-side expectation (``call``, ``webhook``, ``status_callbacks``) works; ``then.sipp`` /
``then.pbx`` judge the peer's exit and counters, ``then.received`` what the twin saw on the
wire (host form, region, codecs offered, X- headers, digest uri, ACK/BYE).

Kept apart from engine.py on purpose: the engine calls :func:`perform` and :func:`judge` only.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from pathlib import Path
from typing import Any

from ..model.calls import Call
from ..ua.client import SipExchange
from .outcome import Environment, Failure, StepOutcome
from .pbx import DEVICES, Target, received, trigger
from .sipp import PeerMissing, run_sipp

ACTIONS = ("sipp", "pbx")


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
            if params["device"] not in DEVICES:
                raise ScenarioError(f"unknown pbx device {params['device']!r}; known: {', '.join(DEVICES)}")
            target = Target(node[0], node[1], host, auth.get("username"), auth.get("password"),
                            params.get("transport", "udp"))
            options: dict[str, Any] = {}
            if params["device"] == "kamailio":
                device_options: dict[str, Any] = {}
                if params.get("header"):
                    (name, value), = params["header"].items()
                    device_options["header"] = (name, str(value))
                if params.get("config"):  # the customer's own configuration, same tokens
                    device_options["config"] = Path(params["config"]).resolve()
                options["device_options"] = device_options
            if params["device"] == "baresip":
                options["seconds"] = float(params.get("seconds", 3))
            device = await asyncio.to_thread(trigger, params["device"], target,
                                             str(params.get("service", "1000")), **options)
            detail = {"pbx": device.as_record()}
    except PeerMissing as err:
        raise ScenarioError(str(err)) from None  # broken, with the reason, never skipped
    await asyncio.sleep(0.2)  # the twin's last trace entries (BYE's 200)
    calls = calls_of(env, context["domain_name"], began)
    messages = [SipExchange(t.at, "in" if t.direction == "out" else "out", t.data)
                for call in calls for t in call.trace]
    detail["calls"] = [c.call_id for c in calls]
    return StepOutcome(action, calls[-1].call_id if calls else "", [], messages, detail=detail)


def calls_of(env: Environment, domain_name: str, since: float) -> list[Call]:
    """The twin's call records for the item's domain since the step began, oldest first."""
    found = [c for c in env.twin.calls.all()
             if c.created_at >= since - 0.5 and (c.domain_name or "").lower() == domain_name.lower()]
    return sorted(found, key=lambda c: c.created_at)


def judge(outcome: StepOutcome, expect: dict[str, Any], env: Environment) -> list[Failure]:

    failures: list[Failure] = []
    detail = outcome.detail
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
