"""Call records keep the trace and webhook requests of an ended call compressed, and lose
nothing by it."""

from __future__ import annotations

import json

from siptwin.model.calls import Call, PackedTrace, PackedWebhooks, TraceEntry
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
