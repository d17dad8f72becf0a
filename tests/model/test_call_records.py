"""Call records keep the trace and webhook requests of an ended call compressed, and lose
nothing by it."""

from __future__ import annotations

import json

from siptwin.model.calls import (
    PACK_BATCH,
    Call,
    CallRegistry,
    PackedTrace,
    PackedWebhooks,
    TraceEntry,
    pack_calls,
)
from siptwin.model.wire import call_from_record, call_to_record, decode_batch, encode_batch


def _call(messages: int) -> Call:
    call = Call("c1@pbx", "us1", "127.0.0.1", 5061, "udp", 1.0)
    for n in range(messages):
        data = (f"SIP/2.0 200 OK\r\nCSeq: {n} INVITE\r\nCall-ID: c1@pbx\r\n"
                "Content-Length: 0\r\n\r\n").encode()
        call.record(TraceEntry(1.0 + n, "out" if n % 2 else "in", "udp", "127.0.0.1:5061",
                               "127.0.1.1:5060", data))
    return call


def test_a_packed_trace_reads_back_exactly() -> None:
    call = _call(12)
    before = list(call.trace)
    call.pack()
    assert isinstance(call.trace, PackedTrace)
    assert call.trace.packed_size < sum(len(e.data) for e in before)
    assert len(call.trace) == 12
    assert list(call.trace) == before
    assert call.trace[3] == before[3] and call.trace[-2:] == before[-2:]
    assert [e.first_line for e in call.trace] == [e.first_line for e in before]


def test_a_late_message_unpacks_the_trace_and_is_kept() -> None:
    call = _call(3)
    call.pack()
    late = TraceEntry(9.0, "in", "udp", "127.0.0.1:5061", "127.0.1.1:5060", b"ACK sip:x SIP/2.0")
    call.record(late)
    assert isinstance(call.trace, list)
    assert len(call.trace) == 4 and call.trace[-1] == late


def test_an_empty_trace_stays_a_list() -> None:
    call = _call(0)
    call.pack()
    assert call.trace == []


def _webhook(kind: str, n: int) -> dict:
    return {"kind": kind, "method": "POST", "url": "https://app.example.com/voice",
            "params": [("CallSid", f"CA{n:032x}"), ("From", "sip:alice@pbx"), ("CallStatus", "ringing")],
            "headers": {"X-Twilio-Signature": "abc=", "Content-Type": "application/x-www-form-urlencoded"},
            "at": 1.5, "status": 200, "error": None, "elapsed": 0.0012, "attempts": 1,
            "offline": False}


def test_packed_webhook_requests_read_back_exactly_and_a_late_one_joins_them() -> None:
    call = _call(4)
    voice = _webhook("voice", 1)
    call.add_webhook(voice)
    before = [dict(w) for w in call.webhooks]
    call.pack()
    assert isinstance(call.webhooks, PackedWebhooks) and len(call.webhooks) == 1
    assert call.webhooks == before and call.webhooks[0] == voice
    assert [w for w in call.webhooks if w.get("kind") == "voice"] == [voice]
    status = _webhook("status-callback", 1)
    call.add_webhook(status)  # the completed status callback, after the call ended
    assert isinstance(call.webhooks, PackedWebhooks)
    assert list(call.webhooks) == [voice, status]


def test_a_packed_record_crosses_processes_the_same() -> None:
    call = _call(3)
    call.add_webhook(_webhook("voice", 2))
    plain = call_to_record(call)
    call.pack()
    packed = call_to_record(call)
    assert json.loads(json.dumps(packed)) == json.loads(json.dumps(plain))
    again = call_from_record(json.loads(json.dumps(packed)))
    assert list(again.trace) == list(call.trace)
    assert json.dumps(list(again.webhooks)) == json.dumps(list(call.webhooks))  # (tuples: lists)
    (batched,) = decode_batch(encode_batch([call])[4:])
    assert list(batched.webhooks) == list(call.webhooks) and list(batched.trace) == list(call.trace)


def test_an_empty_webhook_list_stays_a_list() -> None:
    call = _call(2)
    call.pack()
    assert call.webhooks == [] and isinstance(call.webhooks, list)


def _numbered_call(n: int, messages: int) -> Call:
    call = Call(f"c{n}@pbx", "us1", "127.0.0.1", 5061, "udp", 1.0)
    for m in range(messages):
        call.record(TraceEntry(1.0 + m, "in", "udp", "127.0.0.1:5061", "127.0.1.1:5060",
                               f"BYE sip:x SIP/2.0\r\nCSeq: {m} BYE\r\nCall-ID: c{n}@pbx\r\n".encode()))
    if n % 2:
        call.add_webhook(_webhook("voice", n))
    return call


def test_calls_packed_as_one_batch_each_read_back_their_own_record() -> None:
    calls = [_numbered_call(n, n % 4) for n in range(7)]  # some without a trace or webhooks
    before = [(list(c.trace), [dict(w) for w in c.webhooks]) for c in calls]
    pack_calls(calls)
    for call, (trace, webhooks) in zip(calls, before, strict=True):
        assert list(call.trace) == trace and list(call.webhooks) == webhooks
        assert isinstance(call.trace, PackedTrace) == bool(trace)
        assert isinstance(call.webhooks, PackedWebhooks) == bool(webhooks)
    late = TraceEntry(9.0, "in", "udp", "127.0.0.1:5061", "127.0.1.1:5060", b"ACK sip:x SIP/2.0")
    calls[3].record(late)  # unpacks only that call's trace
    assert list(calls[3].trace) == [*before[3][0], late]
    assert list(calls[2].trace) == before[2][0]
    calls[1].add_webhook(_webhook("status-callback", 1))
    assert list(calls[1].webhooks) == [*before[1][1], _webhook("status-callback", 1)]


def test_the_registry_packs_ended_calls_by_batch_and_holds_at_most_one_batch_open() -> None:
    registry = CallRegistry()
    calls = [_numbered_call(n, 3) for n in range(PACK_BATCH * 2 + 3)]
    traces = [list(c.trace) for c in calls]
    for call in calls:
        registry.put(call)
        registry.pack_later(call)
    open_ = [c for c in calls if isinstance(c.trace, list)]
    assert open_ == calls[-3:]  # the last, incomplete batch waits
    assert all(isinstance(c.trace, PackedTrace) for c in calls[:-3])
    assert len({c.trace._blob for c in calls[:PACK_BATCH]}) == 1  # one blob per batch
    registry.pack_pending()
    assert all(isinstance(c.trace, PackedTrace) for c in calls)
    assert [list(c.trace) for c in calls] == traces
