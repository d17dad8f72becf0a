"""Call records keep the trace of an ended call compressed, and lose nothing by it."""

from __future__ import annotations

from siptwin.model.calls import Call, PackedTrace, TraceEntry


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
    call.pack_trace()
    assert isinstance(call.trace, PackedTrace)
    assert call.trace.packed_size < sum(len(e.data) for e in before)
    assert len(call.trace) == 12
    assert list(call.trace) == before
    assert call.trace[3] == before[3] and call.trace[-2:] == before[-2:]
    assert [e.first_line for e in call.trace] == [e.first_line for e in before]


def test_a_late_message_unpacks_the_trace_and_is_kept() -> None:
    call = _call(3)
    call.pack_trace()
    late = TraceEntry(9.0, "in", "udp", "127.0.0.1:5061", "127.0.1.1:5060", b"ACK sip:x SIP/2.0")
    call.record(late)
    assert isinstance(call.trace, list)
    assert len(call.trace) == 4 and call.trace[-1] == late


def test_an_empty_trace_stays_a_list() -> None:
    call = _call(0)
    call.pack_trace()
    assert call.trace == []
