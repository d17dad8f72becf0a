"""Transactions (RFC 3261 §17, RFC 6026) driven in virtual time: no sockets, no sleeps."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siptwin.sip.message import Request, Response, make_request, make_response, parse_datagram
from siptwin.sip.routing import Hop
from siptwin.sip.transaction import (
    AckReceived,
    Dropped,
    Effect,
    RequestReceived,
    ResponseReceived,
    Send,
    State,
    Terminated,
    Timeout,
    TimerConfig,
    TransactionError,
    TransactionLayer,
    TransportError,
    build_ack,
    build_cancel,
    new_branch,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"
PBX = ("192.0.2.10", 5060)
TWIN = ("198.51.100.1", 5060)


# ---------------------------------------------------------------------------- helpers


def request(
    method: str = "INVITE",
    branch: str = "z9hG4bK-a1",
    *,
    transport: str = "UDP",
    cseq: int = 1,
    to_tag: str | None = None,
    routes: tuple[str, ...] = (),
    call_id: str = "call-1@pbx",
) -> Request:
    to = "<sip:1001@acme.sip.us1.twilio.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = [("Via", f"SIP/2.0/{transport} 192.0.2.10:5060;branch={branch};rport")]
    headers += [("Route", r) for r in routes]
    headers += [
        ("Max-Forwards", "70"),
        ("From", '"Alice" <sip:alice@pbx.example.com>;tag=from-1'),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:alice@192.0.2.10:5060>"),
    ]
    return make_request(method, "sip:1001@acme.sip.us1.twilio.com", headers)


def copy(message: Request | Response) -> Request | Response:
    """What the network delivers: a fresh parse of the same bytes."""
    return parse_datagram(message.to_bytes())


def sends(effects: list[Effect]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def on_the_wire(effects: list[Effect]) -> list[tuple[bytes, object, object, bool]]:
    """The sends as what goes out: a finished transaction re-sends its response's bytes."""
    return [(e.message.to_bytes(), e.destination, e.key, e.retransmission) for e in sends(effects)]


def of(effects: list[Effect], kind: type) -> list:
    return [e for e in effects if isinstance(e, kind)]


def run(layer: TransactionLayer, until: float) -> list[tuple[float, Effect]]:
    """Advance virtual time deadline by deadline up to ``until``; effects with their time."""
    timeline: list[tuple[float, Effect]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        timeline.extend((deadline, e) for e in layer.advance(deadline))
    return timeline


def send_times(timeline: list[tuple[float, Effect]]) -> list[float]:
    return [round(t, 6) for t, e in timeline if isinstance(e, Send)]


def new_invite_tx(layer: TransactionLayer, **kw) -> tuple[tuple, Request]:
    invite = request("INVITE", **kw)
    effects = layer.receive(copy(invite), PBX, 0.0)
    (received,) = of(effects, RequestReceived)
    return received.key, invite


# ---------------------------------------------------------------------------- server INVITE


def test_retransmitted_invite_reaches_the_tu_once_and_gets_the_last_provisional() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    assert layer.receive(copy(invite), PBX, 0.1) == []  # nothing sent yet: absorbed
    layer.respond(key, make_response(invite, 100), 0.2)
    ringing = make_response(invite, 180, to_tag="twin-1")
    assert sends(layer.respond(key, ringing, 0.3)) == [Send(ringing, PBX, key)]
    effects = layer.receive(copy(invite), PBX, 0.5)
    assert effects == [Send(ringing, PBX, key, retransmission=True)]
    assert not of(effects, RequestReceived)
    assert layer.transaction(key).state is State.PROCEEDING


def test_timer_g_retransmits_the_final_response_doubling_up_to_t2_until_ack() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    busy = make_response(invite, 486, to_tag="twin-1")
    layer.respond(key, busy, 0.0)
    timeline = run(layer, 12.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(e.message is busy and e.retransmission for _, e in timeline)
    # A retransmitted INVITE in Completed re-sends the final response at once.
    assert sends(layer.receive(copy(invite), PBX, 12.0)) == [Send(busy, PBX, key, True)]
    ack = build_ack(invite, busy)
    assert layer.receive(copy(ack), PBX, 12.5) == []  # absorbed: the TU never sees it
    assert layer.transaction(key).state is State.CONFIRMED
    assert layer.receive(copy(ack), PBX, 13.0) == []  # retransmitted ACK absorbed too
    timeline = run(layer, 100.0)
    assert timeline == [(12.5 + 5.0, Terminated(key, State.CONFIRMED))]  # Timer I = T4
    assert key not in layer and len(layer) == 0


def test_what_waits_out_the_timers_holds_no_messages_it_will_not_send_again() -> None:
    """1,000 calls/s keep 32 s of finished transactions: each must be small. A server
    transaction lets go of its request at the final response, of a 2xx at once (the ACK wait
    re-sends it) and of a non-2xx once ACKed; a cancelled timer lets go of its owner; a
    finished non-INVITE keeps its final response as the bytes sent."""
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    busy = make_response(invite, 486, to_tag="twin-1")
    layer.respond(key, busy, 0.0)
    tx = layer.transaction(key)
    assert tx.request is None and tx.last_response is busy  # Timer G still re-sends it
    layer.receive(copy(build_ack(invite, busy)), PBX, 0.1)
    assert tx.state is State.CONFIRMED and tx.last_response is None

    key, invite = new_invite_tx(layer, branch="z9hG4bK-a2", call_id="call-2@pbx")
    ok = make_response(invite, 200, to_tag="twin-2")
    layer.respond(key, ok, 0.0)
    tx = layer.transaction(key)
    assert tx.state is State.ACCEPTED and tx.request is None and tx.last_response is None
    assert layer.receive(copy(invite), PBX, 0.2) == []  # still absorbs retransmissions
    ack = request("ACK", branch="z9hG4bK-ack2", to_tag="twin-2", call_id="call-2@pbx")
    assert of(layer.receive(copy(ack), PBX, 0.3), AckReceived)[0].key == key
    cancelled = [entry[2] for entry in layer._heap if not entry[2].live]
    assert cancelled and all(timer.owner is None for timer in cancelled)  # the 2xx is free

    bye = request("BYE", branch="z9hG4bK-b2", to_tag="twin-2", call_id="call-2@pbx", cseq=2)
    (received,) = of(layer.receive(copy(bye), PBX, 1.0), RequestReceived)
    bye_ok = make_response(bye, 200)
    layer.respond(received.key, bye_ok, 1.0)
    tx = layer.transaction(received.key)
    assert tx.request is None and tx.last_response.to_bytes() == bye_ok.to_bytes()
    assert on_the_wire(layer.receive(copy(bye), PBX, 1.5)) == [
        (bye_ok.to_bytes(), PBX, received.key, True)]  # a retransmitted BYE gets it again
    kept = layer._servers[received.key]
    assert kept == ("resend", bye_ok.to_bytes(), PBX)  # nothing else


def _finished_call(layer: TransactionLayer, hop: Hop, name: str) -> tuple[
        RequestReceived, Response, Request, RequestReceived, Response]:
    """An INVITE answered 200 (then Accepted, Timer L) and its BYE answered 200 (Completed,
    Timer J) from ``hop``, both entries compacted; what the tests compare against."""
    invite = request("INVITE", f"z9hG4bK-{name}1", call_id=f"{name}@pbx")
    (rx,) = of(layer.receive(copy(invite), hop, 0.0), RequestReceived)
    ok = make_response(invite, 200, to_tag=f"twin-{name}")
    layer.respond(rx.key, ok, 0.0, retransmit_until_ack=False)
    bye = request("BYE", f"z9hG4bK-{name}2", to_tag=f"twin-{name}", call_id=f"{name}@pbx",
                  cseq=2)
    (bye_rx,) = of(layer.receive(copy(bye), hop, 1.0), RequestReceived)
    bye_ok = make_response(bye, 200)
    layer.respond(bye_rx.key, bye_ok, 1.0)
    assert layer.receive(copy(invite), hop, 1.5) == []  # (also compacts the BYE's entry)
    return rx, ok, bye, bye_rx, bye_ok


def test_finished_transactions_are_nothing_the_collector_walks() -> None:
    """What an Accepted INVITE and a Completed BYE keep for Timers L and J - a peer Hop's
    fields and the response's bytes - is a plain string or bytes, which the cyclic collector
    never tracks: at 500 calls/s tens of thousands of them would otherwise make every young
    collection pass tens of milliseconds. Retransmissions are absorbed and answered to an
    equal Hop as before."""
    hop = Hop("udp", "192.0.2.10", 5060)
    layer = TransactionLayer()
    rx, ok, bye, bye_rx, bye_ok = _finished_call(layer, hop, "gc")
    for key in (rx.key, bye_rx.key):  # never tracked: not even the next young pass walks them
        assert not gc.is_tracked(layer._servers[key])
    accepted, completed = layer.transaction(rx.key), layer.transaction(bye_rx.key)
    assert (accepted.state, accepted.peer) == (State.ACCEPTED, hop)
    assert (completed.state, completed.peer) == (State.COMPLETED, hop)
    assert on_the_wire(layer.receive(copy(bye), hop, 2.0)) == [
        (bye_ok.to_bytes(), hop, bye_rx.key, True)]
    again = layer.respond(rx.key, ok, 2.0, retransmit_until_ack=False)  # the TU's 2xx
    assert on_the_wire(again) == [(ok.to_bytes(), hop, rx.key, True)]
    assert [(t, e.state) for t, e in run(layer, 100.0)] == [(32.0, State.ACCEPTED),
                                                           (33.0, State.COMPLETED)]


@pytest.mark.parametrize("hop", [
    Hop("udp", "192.0.2.10", 5060), Hop("tcp", "[2001:db8::1]", 5061),
    Hop("udp", "pbx with spaces.example", 0), Hop("tls", "caf\u00e9.example\udce9", 65535),
    Hop("udp", "two\nlines", 5060),  # (no such host arrives: kept as a tuple, still equal)
])
def test_a_finished_transaction_keeps_its_peer_hop_exactly(hop: Hop) -> None:
    layer = TransactionLayer()
    rx, ok, bye, bye_rx, bye_ok = _finished_call(layer, hop, "peer")
    for key in (rx.key, bye_rx.key):
        assert type(layer.transaction(key).peer) is Hop and layer.transaction(key).peer == hop
    assert on_the_wire(layer.receive(copy(bye), hop, 2.0)) == [
        (bye_ok.to_bytes(), hop, bye_rx.key, True)]
    again = layer.respond(rx.key, ok, 2.0, retransmit_until_ack=False)
    assert on_the_wire(again) == [(ok.to_bytes(), hop, rx.key, True)]


def test_a_finished_non_invite_resends_exactly_the_bytes_it_sent() -> None:
    """Whatever the final response held - a field that would not split back into the same
    fields, octets that are not UTF-8, no reason phrase, a body - a retransmitted request
    gets the same octets again, for all of Timer J."""
    layer = TransactionLayer()
    cases = []
    for n, (extra, reason, body) in enumerate([
        ([], None, b""),
        ([("Warning", '399 twin "one\nline"')], "OK", b""),  # kept as the message
        ([("X-Echo", "caf\udce9 \udcff")], "", b"v=0\r\n\r\nbody\r\n"),
    ]):
        options = request("OPTIONS", f"z9hG4bK-exact{n}", call_id=f"exact-{n}@pbx")
        (rx,) = of(layer.receive(copy(options), PBX, float(n)), RequestReceived)
        ok = make_response(options, 200, reason, to_tag="t")
        for name, value in extra:
            ok.add_header(name, value)
        ok.body = body
        assert on_the_wire(layer.respond(rx.key, ok, float(n))) == [(ok.to_bytes(), PBX, rx.key, False)]
        cases.append((options, rx.key, ok.to_bytes()))
    for options, key, sent in cases:
        for at in (5.0, 20.0):
            assert on_the_wire(layer.receive(copy(options), PBX, at)) == [(sent, PBX, key, True)]
    assert [type(layer._servers[key][1]) for _, key, _ in cases] == [bytes, Response, bytes]
    assert [(t, e.state) for t, e in run(layer, 100.0)] == [(32.0, State.COMPLETED),
                                                           (33.0, State.COMPLETED),
                                                           (34.0, State.COMPLETED)]
    assert len(layer) == 0


def test_the_tu_may_resend_its_2xx_while_accepted_and_nothing_else() -> None:
    layer = TransactionLayer(retransmit_2xx=False)
    key, invite = new_invite_tx(layer)
    ok = make_response(invite, 200, to_tag="t")
    layer.respond(key, ok, 0.0)
    assert layer.respond(key, ok, 1.0) == [Send(ok, PBX, key, True)]
    with pytest.raises(TransactionError, match="486 in INVITE server state Accepted"):
        layer.respond(key, make_response(invite, 486, to_tag="t"), 1.5)
    assert layer.transaction(key).state is State.ACCEPTED
    with pytest.raises(TransactionError, match="Terminated"):
        layer.respond(key, ok, 40.0)  # Timer L ended it first
    bye = request("BYE", "z9hG4bK-bye1", to_tag="t", cseq=2)
    (rx,) = of(layer.receive(copy(bye), PBX, 41.0), RequestReceived)
    layer.respond(rx.key, make_response(bye, 200), 41.0)
    with pytest.raises(TransactionError, match="non-INVITE server state Completed"):
        layer.respond(rx.key, make_response(bye, 500), 41.5)


def test_a_finished_transaction_abandoned_or_failed_ends_at_once() -> None:
    layer = TransactionLayer()
    bye = request("BYE", "z9hG4bK-bye2", to_tag="t", cseq=2)
    (rx,) = of(layer.receive(copy(bye), PBX, 0.0), RequestReceived)
    layer.respond(rx.key, make_response(bye, 200), 0.0)
    assert layer.transport_error(rx.key, 1.0) == [TransportError(rx.key),
                                                   Terminated(rx.key, State.COMPLETED)]
    assert of(layer.receive(copy(bye), PBX, 2.0), RequestReceived)  # a new transaction now
    key, invite = new_invite_tx(layer, branch="z9hG4bK-a9", call_id="call-9@pbx")
    layer.respond(key, make_response(invite, 200, to_tag="t"), 3.0, retransmit_until_ack=False)
    assert layer.transport_error(key, 3.5) == [TransportError(key)]  # Accepted stays (RFC 6026)
    assert layer.abandon(key) == [Terminated(key, State.ACCEPTED)]
    assert key not in layer
    # The BYE of the second transaction still ends on Timer J, and nothing ends twice.
    layer.respond(rx.key, make_response(bye, 200), 2.0)
    assert run(layer, 100.0) == [(34.0, Terminated(rx.key, State.COMPLETED))]
    assert len(layer) == 0 and layer.next_deadline() is None


def test_finished_transactions_expire_in_deadline_order_when_the_timers_change() -> None:
    layer = TransactionLayer()
    keys = []
    for n, t1 in enumerate([0.5, 0.25, 0.5]):  # Timer J 32 s, then 16 s, then 32 s again
        layer.config = TimerConfig(t1=t1)
        options = request("OPTIONS", f"z9hG4bK-order{n}", call_id=f"order-{n}@pbx")
        (rx,) = of(layer.receive(copy(options), PBX, float(n)), RequestReceived)
        layer.respond(rx.key, make_response(options, 200, to_tag="t"), float(n))
        keys.append(rx.key)
    assert layer.next_deadline() == 17.0
    assert [(t, e.key) for t, e in run(layer, 100.0)] == [(17.0, keys[1]), (32.0, keys[0]),
                                                         (34.0, keys[2])]


def test_a_finished_transaction_costs_about_200_bytes_beside_its_response() -> None:
    """What 1,000 calls/s keep for 32 s: per call an Accepted INVITE, a Completed BYE and
    (for 5 s) a Confirmed challenged INVITE. Measured with tracemalloc: the keys, table
    entries and expiry queues, and for the BYE the bytes of its 200. About 200 bytes each
    beside the 200 (the key ~90, the table ~50, the queue ~16); each was 0.6-1.1 KB as a
    full transaction object with a heap timer and a tuple key."""
    import tracemalloc

    layer = TransactionLayer()
    calls = 2000
    datagrams = []
    for n in range(calls):  # the peer's bytes are not the layer's
        call_id = f"{n}-4242@127.0.0.1"
        challenged = request("INVITE", f"z9hG4bK-{n}-1", call_id=call_id)
        datagrams.append((challenged.to_bytes(),
                          build_ack(challenged, make_response(challenged, 407, to_tag="t")).to_bytes(),
                          request("INVITE", f"z9hG4bK-{n}-2", call_id=call_id, cseq=2).to_bytes(),
                          request("BYE", f"z9hG4bK-{n}-4", call_id=call_id, cseq=3, to_tag="t").to_bytes()))
    wire = 0
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n, (challenged, ack, invite, bye) in enumerate(datagrams):
        now = n * 0.001
        (rx,) = of(layer.receive(parse_datagram(challenged), PBX, now), RequestReceived)
        layer.respond(rx.key, make_response(rx.request, 407, to_tag="t"), now)
        layer.receive(parse_datagram(ack), PBX, now)
        (rx,) = of(layer.receive(parse_datagram(invite), PBX, now), RequestReceived)
        layer.respond(rx.key, make_response(rx.request, 200, to_tag="t"), now,
                      retransmit_until_ack=False)
        (rx,) = of(layer.receive(parse_datagram(bye), PBX, now), RequestReceived)
        bye_ok = make_response(rx.request, 200)
        wire += len(bye_ok.to_bytes())
        layer.respond(rx.key, bye_ok, now)
        del rx, bye_ok
    layer.advance(calls * 0.001)  # compacts the last one
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(layer) == 3 * calls
    beside = (grown - wire) / (3 * calls)
    assert beside < 230, f"{beside:.0f} bytes per finished transaction beside the responses"


def test_thousands_of_finished_transactions_end_in_order_and_exactly_once() -> None:
    layer = TransactionLayer()
    keys, ended = [], []
    for n in range(10_000):  # past the queue's compaction of the times it has let go
        now = n * 0.01
        options = request("OPTIONS", f"z9hG4bK-many{n}", call_id=f"many-{n}@pbx")
        effects = layer.receive(copy(options), PBX, now)
        (rx,) = of(effects, RequestReceived)
        effects += layer.respond(rx.key, make_response(options, 200, to_tag="t"), now)
        ended += [(now, e) for e in of(effects, Terminated)]
        keys.append(rx.key)
        if n == 5000:  # Timer J (32 s) has ended those made before 18.0 s
            assert len(layer) == 3200 and len(ended) == 1801
    ended += [(t, e) for t, e in run(layer, 1000.0) if isinstance(e, Terminated)]
    assert [e.key for _, e in ended] == keys and len(layer) == 0
    assert all(e.state is State.COMPLETED for _, e in ended)
    assert all(t >= n * 0.01 + 32.0 - 1e-9 for n, (t, _) in enumerate(ended))


def test_timer_h_gives_up_at_64_t1_and_reports_a_timeout() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    layer.respond(key, make_response(invite, 404, to_tag="t"), 0.0)
    timeline = run(layer, 100.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    tail = [(t, e) for t, e in timeline if not isinstance(e, Send)]
    assert tail == [(32.0, Timeout(key, "H")), (32.0, Terminated(key, State.COMPLETED))]
    assert layer.next_deadline() is None


def test_timers_follow_a_configured_t1_and_t2() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.25))
    key, invite = new_invite_tx(layer)
    layer.respond(key, make_response(invite, 480, to_tag="t"), 0.0)
    timeline = run(layer, 10.0)
    assert send_times(timeline)[:5] == [0.1, 0.3, 0.55, 0.8, 1.05]
    assert (6.4, Timeout(key, "H")) in [(round(t, 6), e) for t, e in timeline]


def test_2xx_moves_to_accepted_absorbs_retransmitted_invites_and_passes_the_ack_up() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    ok = make_response(invite, 200, to_tag="twin-1")
    layer.respond(key, ok, 0.0)
    assert layer.transaction(key).state is State.ACCEPTED
    assert layer.receive(copy(invite), PBX, 0.2) == []  # RFC 6026: absorbed, no 2xx resent
    ack = request("ACK", branch="z9hG4bK-ack2xx", to_tag="twin-1")  # 2xx ACK: its own branch
    effects = layer.receive(copy(ack), PBX, 0.3)
    assert [type(e) for e in effects] == [AckReceived] and effects[0].key == key
    assert layer.pending_acks == 0
    assert run(layer, 100.0) == [(32.0, Terminated(key, State.ACCEPTED))]  # Timer L


def test_2xx_is_retransmitted_until_the_ack_arrives() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    ok = make_response(invite, 200, to_tag="twin-1")
    layer.respond(key, ok, 0.0)
    timeline = run(layer, 4.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5]
    assert all(e.message is ok for _, e in timeline)
    ack = request("ACK", branch="z9hG4bK-ack2xx", to_tag="twin-1")
    assert of(layer.receive(copy(ack), PBX, 4.0), AckReceived)
    assert send_times(run(layer, 31.0)) == []


def test_2xx_without_ack_gives_up_after_64_t1_for_the_32022_teardown() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    layer.respond(key, make_response(invite, 200, to_tag="twin-1"), 0.0)
    timeline = run(layer, 100.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert (32.0, Timeout(key, "2xx-ack")) in timeline
    assert layer.pending_acks == 0 and len(layer) == 0
    # A late ACK is still handed to the TU, now matching nothing.
    late = layer.receive(copy(request("ACK", branch="z9hG4bK-x", to_tag="twin-1")), PBX, 40.0)
    assert [type(e) for e in late] == [AckReceived] and late[0].key is None


def test_2xx_retransmission_can_be_left_to_the_tu() -> None:
    layer = TransactionLayer(retransmit_2xx=False)
    key, invite = new_invite_tx(layer)
    layer.respond(key, make_response(invite, 200, to_tag="t"), 0.0)
    assert send_times(run(layer, 31.0)) == []
    again = make_response(invite, 200, to_tag="t")
    assert layer.respond(key, again, 1.0) == [Send(again, PBX, key, True)]


def test_a_final_response_cannot_follow_a_final_response() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    layer.respond(key, make_response(invite, 486, to_tag="t"), 0.0)
    with pytest.raises(TransactionError):
        layer.respond(key, make_response(invite, 200, to_tag="t"), 0.1)
    with pytest.raises(TransactionError):
        layer.respond(("s", "nope"), make_response(invite, 200), 0.1)


def test_a_premature_ack_is_absorbed_in_proceeding() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    ack = request("ACK")  # same branch as the INVITE
    assert layer.receive(copy(ack), PBX, 0.1) == []
    assert layer.transaction(key).state is State.PROCEEDING


# ---------------------------------------------------------------------------- reliable transports


def test_reliable_transport_disables_retransmissions_and_zeroes_i_and_j() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer, transport="TCP")
    assert layer.transaction(key).reliable
    busy = make_response(invite, 486, to_tag="t")
    layer.respond(key, busy, 0.0)
    assert layer.next_deadline() == 32.0  # only Timer H runs
    effects = layer.receive(copy(build_ack(invite, busy)), PBX, 1.0)
    assert effects == [Terminated(key, State.CONFIRMED)]  # Timer I = 0

    options = request("OPTIONS", "z9hG4bK-o", transport="TCP")
    (rx,) = of(layer.receive(copy(options), PBX, 2.0), RequestReceived)
    effects = layer.respond(rx.key, make_response(options, 200, to_tag="t"), 2.0)
    assert [type(e) for e in effects] == [Send, Terminated]  # Timer J = 0

    key2, invite2 = new_invite_tx(layer, branch="z9hG4bK-a2", transport="TLS")
    layer.respond(key2, make_response(invite2, 200, to_tag="t"), 3.0)
    timeline = run(layer, 100.0)
    assert send_times(timeline) == []  # no 2xx retransmission either, but still the give-up
    assert (35.0, Timeout(key2, "2xx-ack")) in timeline


def test_reliable_can_be_forced_by_the_adapter() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    (rx,) = of(layer.receive(copy(invite), PBX, 0.0, reliable=True), RequestReceived)
    assert layer.transaction(rx.key).reliable


# ---------------------------------------------------------------------------- server non-INVITE


def test_non_invite_server_absorbs_in_trying_resends_the_response_and_timer_j_ends_it() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS", "z9hG4bK-o1")
    (rx,) = of(layer.receive(copy(options), PBX, 0.0), RequestReceived)
    assert layer.receive(copy(options), PBX, 0.5) == []  # Trying: absorbed
    trying = make_response(options, 100)
    layer.respond(rx.key, trying, 0.6)
    assert layer.receive(copy(options), PBX, 1.0) == [Send(trying, PBX, rx.key, True)]
    ok = make_response(options, 200, to_tag="t")
    layer.respond(rx.key, ok, 1.0)
    assert layer.transaction(rx.key).state is State.COMPLETED
    assert on_the_wire(layer.receive(copy(options), PBX, 5.0)) == [(ok.to_bytes(), PBX, rx.key, True)]
    assert run(layer, 100.0) == [(33.0, Terminated(rx.key, State.COMPLETED))]  # Timer J
    # After Timer J the same request is a new transaction again.
    assert of(layer.receive(copy(options), PBX, 40.0), RequestReceived)


def test_cancel_is_its_own_transaction_and_names_the_invite_it_cancels() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    layer.respond(key, make_response(invite, 180, to_tag="t"), 0.1)
    cancel = build_cancel(invite)
    (rx,) = of(layer.receive(copy(cancel), PBX, 1.0), RequestReceived)
    assert rx.key != key and rx.cancels == key
    assert layer.transaction(rx.key).request.method == "CANCEL"
    ok = make_response(cancel, 200, to_tag="t")
    layer.respond(rx.key, ok, 1.0)
    terminated = make_response(invite, 487, to_tag="t")
    layer.respond(key, terminated, 1.0)
    assert on_the_wire(layer.receive(copy(cancel), PBX, 1.2)) == [(ok.to_bytes(), PBX, rx.key, True)]
    assert layer.receive(copy(build_ack(invite, terminated)), PBX, 1.3) == []
    assert layer.transaction(key).state is State.CONFIRMED
    # A CANCEL for an unknown INVITE still makes a transaction, for the TU's 481.
    stray = build_cancel(request("INVITE", "z9hG4bK-unknown"))
    (rx2,) = of(layer.receive(copy(stray), PBX, 2.0), RequestReceived)
    assert rx2.cancels is None


def test_matching_uses_sent_by_and_method_not_the_branch_alone() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    other_host = parse_datagram(invite.to_bytes().replace(b"192.0.2.10:5060;branch", b"192.0.2.99:5060;branch"))
    assert of(layer.receive(other_host, PBX, 0.1), RequestReceived)
    same_branch_bye = request("BYE", cseq=2)
    assert of(layer.receive(copy(same_branch_bye), PBX, 0.2), RequestReceived)
    assert len(layer) == 3


# ---------------------------------------------------------------------------- RFC 2543 matching


def test_rfc2543_invite_matches_without_a_branch() -> None:
    data = (CORPUS / "inv2543.dat").read_bytes()
    invite = parse_datagram(data)
    assert not invite.top_via.is_rfc3261
    layer = TransactionLayer()
    (rx,) = of(layer.receive(invite, PBX, 0.0), RequestReceived)
    assert rx.key[0] == "s2543"
    assert layer.receive(parse_datagram(data), PBX, 0.4) == []  # retransmission absorbed
    busy = make_response(invite, 486, to_tag="twin-9")
    layer.respond(rx.key, busy, 0.5)
    assert layer.receive(parse_datagram(data), PBX, 0.6) == [Send(busy, PBX, rx.key, True)]
    # The ACK of an RFC 2543 UA: same Request-URI, Call-ID, From, CSeq number, Via; our tag.
    wrong_tag = build_ack(invite, make_response(invite, 486, to_tag="someone-else"))
    assert [type(e) for e in layer.receive(copy(wrong_tag), PBX, 0.7)] == [AckReceived]
    assert layer.transaction(rx.key).state is State.COMPLETED
    ack = build_ack(invite, busy)
    assert "branch" not in ack.headers.get("Via")
    assert layer.receive(copy(ack), PBX, 0.8) == []
    assert layer.transaction(rx.key).state is State.CONFIRMED


def test_rfc2543_requests_differing_in_cseq_or_via_are_different_transactions() -> None:
    data = (CORPUS / "inv2543.dat").read_bytes()
    layer = TransactionLayer()
    layer.receive(parse_datagram(data), PBX, 0.0)
    next_cseq = parse_datagram(data.replace(b"CSeq: 56 INVITE", b"CSeq: 57 INVITE"))
    other_via = parse_datagram(data.replace(b"iftgw.example.com", b"gw2.example.com"))
    assert of(layer.receive(next_cseq, PBX, 0.1), RequestReceived)
    assert of(layer.receive(other_via, PBX, 0.2), RequestReceived)
    assert len(layer) == 3


def test_rfc2543_cancel_names_its_invite() -> None:
    data = (CORPUS / "inv2543.dat").read_bytes()
    invite = parse_datagram(data)
    layer = TransactionLayer()
    (rx,) = of(layer.receive(invite, PBX, 0.0), RequestReceived)
    (crx,) = of(layer.receive(copy(build_cancel(invite)), PBX, 0.5), RequestReceived)
    assert crx.cancels == rx.key and crx.key != rx.key


# ---------------------------------------------------------------------------- client INVITE


def client_invite(layer: TransactionLayer, *, transport: str = "UDP", now: float = 0.0):
    invite = request(
        "INVITE", new_branch(), transport=transport, routes=("<sip:edge.example.com;lr>",)
    )
    key, effects = layer.send_request(invite, TWIN, now)
    assert effects == [Send(invite, TWIN, key)]
    return key, invite


def test_timer_a_retransmits_the_invite_and_timer_b_times_out() -> None:
    layer = TransactionLayer()
    key, invite = client_invite(layer)
    timeline = run(layer, 100.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # doubling, no T2 cap
    tail = [(t, e) for t, e in timeline if not isinstance(e, Send)]
    assert tail == [(32.0, Timeout(key, "B")), (32.0, Terminated(key, State.CALLING))]


def test_a_provisional_stops_timer_a() -> None:
    layer = TransactionLayer()
    key, invite = client_invite(layer)
    run(layer, 0.6)
    effects = layer.receive(copy(make_response(invite, 180, to_tag="t")), TWIN, 1.0)
    assert [type(e) for e in effects] == [ResponseReceived] and effects[0].key == key
    assert layer.transaction(key).state is State.PROCEEDING
    assert layer.next_deadline() is None


def test_client_acks_a_486_itself_with_the_right_headers() -> None:
    layer = TransactionLayer()
    key, invite = client_invite(layer)
    busy = copy(make_response(invite, 486, to_tag="busy-7"))
    effects = layer.receive(busy, TWIN, 0.2)
    assert [type(e) for e in effects] == [Send, ResponseReceived]
    ack = effects[0].message
    assert effects[0].destination == TWIN
    assert ack.method == "ACK" and ack.uri_text == invite.uri_text
    assert ack.headers.get_all("Via") == [invite.headers.get("Via")]
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.call_id == invite.call_id
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.to.tag == "busy-7"
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.headers.get_all("Route") == ["<sip:edge.example.com;lr>"]
    assert ack.body == b"" and ack.headers.get("Content-Length") == "0"
    # A retransmitted 486 is absorbed and answered with the same ACK.
    assert layer.receive(copy(busy), TWIN, 1.0) == [Send(ack, TWIN, key, True)]
    assert run(layer, 100.0) == [(32.2, Terminated(key, State.COMPLETED))]  # Timer D


def test_client_2xx_goes_to_the_tu_and_timer_m_passes_retransmissions_up() -> None:
    layer = TransactionLayer()
    key, invite = client_invite(layer)
    ok = make_response(invite, 200, to_tag="t")
    assert [type(e) for e in layer.receive(copy(ok), TWIN, 0.3)] == [ResponseReceived]
    assert layer.transaction(key).state is State.ACCEPTED
    assert [type(e) for e in layer.receive(copy(ok), TWIN, 0.8)] == [ResponseReceived]
    assert run(layer, 100.0) == [(0.3 + 32.0, Terminated(key, State.ACCEPTED))]
    stray = layer.receive(copy(ok), TWIN, 40.0)
    assert stray == [ResponseReceived(stray[0].response, None)]


def test_client_invite_on_tcp_does_not_retransmit_and_acks_without_timer_d() -> None:
    layer = TransactionLayer()
    key, invite = client_invite(layer, transport="TCP")
    assert layer.next_deadline() == 32.0  # Timer B only
    effects = layer.receive(copy(make_response(invite, 603, to_tag="t")), TWIN, 1.0)
    assert [type(e) for e in effects] == [Send, ResponseReceived, Terminated]


# ---------------------------------------------------------------------------- client non-INVITE


def test_timer_e_retransmits_and_timer_f_times_out() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS", new_branch())
    key, _ = layer.send_request(options, TWIN, 0.0)
    timeline = run(layer, 100.0)
    assert send_times(timeline) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeline[-2:] == [(32.0, Timeout(key, "F")), (32.0, Terminated(key, State.TRYING))]


def test_timer_e_uses_t2_once_proceeding_and_timer_k_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    bye = request("BYE", new_branch(), cseq=2)
    key, _ = layer.send_request(bye, TWIN, 0.0)
    run(layer, 0.6)  # first retransmission at 0.5, next due at 1.5
    layer.receive(copy(make_response(bye, 100)), TWIN, 0.7)
    assert send_times(run(layer, 10.0)) == [1.5, 5.5, 9.5]
    ok = make_response(bye, 200, to_tag="t")
    assert [type(e) for e in layer.receive(copy(ok), TWIN, 10.0)] == [ResponseReceived]
    assert layer.receive(copy(ok), TWIN, 11.0) == []  # Completed absorbs
    assert run(layer, 100.0) == [(15.0, Terminated(key, State.COMPLETED))]  # Timer K = T4


def test_client_non_invite_on_tcp_terminates_on_the_final_response() -> None:
    layer = TransactionLayer()
    reg = request("REGISTER", new_branch(), transport="TCP")
    key, _ = layer.send_request(reg, TWIN, 0.0)
    assert layer.next_deadline() == 32.0
    effects = layer.receive(copy(make_response(reg, 401, to_tag="t")), TWIN, 0.1)
    assert [type(e) for e in effects] == [ResponseReceived, Terminated]


def test_client_cancel_is_a_separate_transaction_on_the_invite_branch() -> None:
    layer = TransactionLayer()
    key, invite = client_invite(layer)
    cancel = build_cancel(invite)
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.headers.get_all("Route") == invite.headers.get_all("Route")
    ckey, _ = layer.send_request(cancel, TWIN, 0.1)
    assert ckey != key
    effects = layer.receive(copy(make_response(cancel, 200, to_tag="t")), TWIN, 0.2)
    assert effects[0].key == ckey
    effects = layer.receive(copy(make_response(invite, 487, to_tag="t")), TWIN, 0.3)
    assert effects[1] == ResponseReceived(effects[1].response, key)


def test_send_request_refuses_acks_and_requests_without_a_3261_branch() -> None:
    layer = TransactionLayer()
    with pytest.raises(TransactionError):
        layer.send_request(request("ACK", new_branch()), TWIN, 0.0)
    with pytest.raises(TransactionError):
        layer.send_request(request("OPTIONS", "old-style"), TWIN, 0.0)
    opts = request("OPTIONS", new_branch())
    layer.send_request(opts, TWIN, 0.0)
    with pytest.raises(TransactionError):
        layer.send_request(opts, TWIN, 0.0)


def test_responses_without_a_usable_via_are_dropped() -> None:
    layer = TransactionLayer()
    response = Response(200, headers=None)
    response.add_header("CSeq", "1 OPTIONS")
    assert [type(e) for e in layer.receive(response, TWIN, 0.0)] == [Dropped]


def test_transport_error_is_reported_and_ends_the_transaction() -> None:
    layer = TransactionLayer()
    key, _ = client_invite(layer)
    assert layer.transport_error(key, 0.1) == [TransportError(key), Terminated(key, State.CALLING)]
    assert layer.next_deadline() is None
    assert layer.transport_error(key, 0.2) == []


def test_new_branch_is_rfc3261_and_unique() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000 and all(b.startswith("z9hG4bK") for b in branches)


def test_late_advance_keeps_the_retransmission_schedule_exact() -> None:
    layer = TransactionLayer()
    key, invite = new_invite_tx(layer)
    layer.respond(key, make_response(invite, 486, to_tag="t"), 0.0)
    effects = layer.advance(4.0)  # the loop woke up late: G at 0.5, 1.5 and 3.5 all fire
    assert len(sends(effects)) == 3 and layer.next_deadline() == 7.5


def test_hundreds_of_concurrent_transactions_are_cheap() -> None:
    layer = TransactionLayer()
    for i in range(500):
        invite = request("INVITE", f"z9hG4bK-{i}", call_id=f"c{i}")
        (rx,) = of(layer.receive(invite, PBX, i * 0.001), RequestReceived)
        layer.respond(rx.key, make_response(invite, 486 if i % 2 else 200, to_tag="t"), i * 0.001)
    assert len(layer) == 500
    timeline = run(layer, 200.0)
    assert len(layer) == 0 and layer.pending_acks == 0
    assert sum(isinstance(e, Timeout) for _, e in timeline) == 500  # 250 H + 250 2xx-ack


# ---------------------------------------------------------------------------- property


INVITE_A = request("INVITE", "z9hG4bK-pa", call_id="pa")
OPTIONS_B = request("OPTIONS", "z9hG4bK-pb", call_id="pb")
INVITE_2543 = parse_datagram((CORPUS / "inv2543.dat").read_bytes())
REQUESTS = [INVITE_A, OPTIONS_B, INVITE_2543]

operation = st.one_of(
    st.tuples(st.just("deliver"), st.integers(0, len(REQUESTS) - 1)),
    st.tuples(st.just("respond"), st.integers(0, len(REQUESTS) - 1), st.sampled_from([100, 180, 200, 486])),
    st.tuples(st.just("ack"), st.integers(0, len(REQUESTS) - 1)),
    st.tuples(st.just("wait"), st.floats(0.0, 2.5)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, max_size=60), reliable=st.booleans())
def test_random_retransmission_interleavings_never_deliver_a_request_twice(ops, reliable) -> None:
    # T4 longer than the run so Confirmed transactions outlive it; total time stays < 64*T1.
    layer = TransactionLayer(TimerConfig(t4=100.0))
    now = 0.0
    delivered: dict[int, list[tuple]] = {i: [] for i in range(len(REQUESTS))}
    finals: dict[int, Response] = {}
    keys: dict[int, tuple] = {}
    for op in ops:
        effects: list[Effect] = []
        alive = False
        if op[0] == "wait":
            now = min(now + op[1], 30.0)
            effects = layer.advance(now)
            if reliable:
                assert not sends(effects)  # no timer-driven retransmission on TCP/TLS
        elif op[0] == "deliver":
            alive = op[1] in keys and keys[op[1]] in layer
            effects = layer.receive(copy(REQUESTS[op[1]]), PBX, now, reliable=reliable)
        elif op[0] == "respond":
            i, status = op[1], op[2]
            tx = layer.transaction(keys[i]) if i in keys else None
            if tx is None or i in finals:
                continue
            if status == 200 or status == 486:
                if status == 200 and REQUESTS[i].method != "INVITE":
                    status = 202
                finals[i] = make_response(REQUESTS[i], status, to_tag=f"t{i}")
                effects = layer.respond(keys[i], finals[i], now)
            else:
                effects = layer.respond(keys[i], make_response(REQUESTS[i], status, to_tag=f"t{i}"), now)
        elif op[0] == "ack":
            i = op[1]
            if i not in finals or REQUESTS[i].method != "INVITE":
                continue
            ack = build_ack(REQUESTS[i], finals[i])
            effects = layer.receive(copy(ack), PBX, now, reliable=reliable)
            assert not of(effects, RequestReceived)
        for e in of(effects, RequestReceived):
            assert not alive, f"{op}: delivered again while its transaction lives"
            i = next(j for j, r in enumerate(REQUESTS) if r.call_id == e.request.call_id)
            delivered[i].append(e.key)
            keys[i] = e.key
        assert all(e.destination == PBX for e in sends(effects))
        assert not of(effects, Timeout)  # nothing can time out before 64*T1
    if not reliable:  # on UDP every transaction outlives the run: at most one delivery each
        assert all(len(v) <= 1 for v in delivered.values()), delivered


def test_an_abandoned_server_transaction_is_forgotten_and_a_retransmission_starts_anew() -> None:
    layer = TransactionLayer()
    invite = parse_datagram(
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9;branch=z9hG4bKdrop1\r\n"
        b"From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: drop@x\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n")
    first = layer.receive(invite, ("127.0.0.9", 5060), 0.0)
    key = next(e.key for e in first if isinstance(e, RequestReceived))
    assert len(layer) == 1
    effects = layer.abandon(key)
    assert len(layer) == 0 and any(isinstance(e, Terminated) for e in effects)
    again = layer.receive(invite, ("127.0.0.9", 5060), 0.5)
    assert any(isinstance(e, RequestReceived) for e in again)  # judged again, not absorbed
