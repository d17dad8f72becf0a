"""scapy on lo: spoofed sources against the ACL, fragments, oversized and broken datagrams,
the RFC 4475 corpus sent raw. The node never crashes and keeps serving: an authenticated call
still works afterwards. Needs root (raw sockets); CI runs as root."""

from __future__ import annotations

import asyncio
import os

import pytest

from siptwin.harness.provision import DomainPlan
from siptwin.harness.rawpackets import Listener, invite, send_udp
from siptwin.harness.security import record_security_result
from siptwin.ua.client import Auth
from tests.support import PASSWORD

from .malformed import RFC4475, broken_messages

CORPUS = RFC4475


@pytest.fixture(autouse=True)
def _root_and_scapy() -> None:
    if os.geteuid() != 0:
        pytest.fail("scapy raw sockets need root (CI runs as root)")
    try:
        import scapy  # noqa: F401
    except ImportError:
        pytest.fail("scapy is not installed: pip install -e '.[test]'")


async def _exchange(src: str, node, payload: bytes, *, fragsize: int | None = None,
                    wait: float = 1.0) -> tuple[int, list[bytes]]:
    def go():
        with Listener(src) as listener:
            sent = send_udp(src, listener.port, node[0], node[1], payload, fragsize=fragsize)
            return sent, listener.collect(wait)
    return await asyncio.to_thread(go)


async def _still_serving(harness, region: str) -> None:
    call = await harness.call(region, f"sip:1000@acme.sip.{region}.twilio.com",
                              auth=Auth("alice", PASSWORD), hang_up=True)
    assert call.statuses[-1] == 200, call.statuses


async def test_spoofed_listed_source_is_admitted_and_unlisted_one_dropped(harness, results_dir) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.77"]))
    node = harness.node_port("us1")
    host = "acme.sip.us1.twilio.com"
    _, listed = await _exchange("127.0.0.77", node, invite(host, "127.0.0.77", 0), wait=2)
    _, unlisted = await _exchange("127.0.0.78", node, invite(host, "127.0.0.78", 0), wait=1)
    calls = {c.source_ip: c for c in harness.twin.calls.all()}
    # The Via's port is a placeholder: the node answers the packet's source (rport).
    assert any(r.startswith(b"SIP/2.0 200") for r in listed), [r[:40] for r in listed]
    assert unlisted == []
    assert calls["127.0.0.77"].sid and calls["127.0.0.78"].status == "dropped"
    assert any(a.code == 32201 for a in calls["127.0.0.78"].alerts)
    record_security_result(results_dir, "scapy-spoofed-sources-acl",
                   "Spoofed loopback sources: the ACL judges the packet's source address",
                   region="us1", passed=True, pins=["spec §4.2 step 6"],
                   notes=["INVITE spoofed from 127.0.0.77 (listed): answered 200.",
                          "INVITE spoofed from 127.0.0.78 (unlisted): silence, call dropped, 32201.",
                          "On a real network a spoofed UDP source cannot complete the dialog "
                          "(answers go to the spoofed address); the ACL is not authentication."])


async def test_fragmented_oversized_and_broken_datagrams_never_stop_the_node(harness, results_dir) -> None:
    await harness.provision(DomainPlan("acme", acl=["127.0.0.1"], credentials=[("alice", PASSWORD)]))
    node = harness.node_port("ie1")
    host = "acme.sip.ie1.twilio.com"
    src = "127.0.0.1"
    notes = []
    big = invite(host, src, 0, extra="".join(f"X-Pad-{i}: {'p' * 180}\r\n" for i in range(20)))
    sent, replies = await _exchange(src, node, big, fragsize=512, wait=2)
    assert sent > 4 and replies and replies[-1].startswith(b"SIP/2.0 "), replies
    notes.append(f"{len(big)}-byte INVITE in {sent} IP fragments: reassembled, answered "
                 f"{replies[-1][:12].decode()}.")
    huge = invite(host, src, 0, extra=f"X-Huge: {'h' * 64000}\r\n")
    sent, replies = await _exchange(src, node, huge, fragsize=1400, wait=1.5)
    notes.append(f"{len(huge)}-byte INVITE (near the UDP maximum) in {sent} fragments: "
                 f"{replies[-1][:40].decode(errors='replace') if replies else 'no answer'}.")
    cases = {name: payload for name, payload in broken_messages(host, src).items()
             if len(payload) < 8000}  # the catalogue's large ones are covered above
    for name, payload in cases.items():
        _, replies = await _exchange(src, node, payload, wait=0.6)
        first = replies[-1].split(b"\r\n", 1)[0].decode(errors="replace") if replies else "no answer"
        notes.append(f"{name}: {first}")
        if name.startswith("Content-Length larger") or name.startswith("negative"):
            assert first.startswith("SIP/2.0 400"), (name, first)
    await _still_serving(harness, "ie1")
    notes.append("afterwards an authenticated call is answered 200")
    record_security_result(results_dir, "scapy-malformed-datagrams",
                   "Fragmented, oversized, truncated and garbage datagrams: the node keeps serving",
                   region="ie1", passed=True, pins=["RFC 3261 §18.3", "design: nothing crashes"],
                   notes=notes)


async def test_rfc4475_corpus_sent_raw_leaves_the_node_serving(harness, results_dir) -> None:
    await harness.provision(DomainPlan("acme", credentials=[("alice", PASSWORD)]))
    node = harness.node_port("jp1")
    files = sorted(CORPUS.glob("*.dat"))
    assert len(files) >= 40
    answered = 0
    for index, path in enumerate(files):
        src = f"127.0.9.{1 + index % 250}"
        _, replies = await _exchange(src, node, path.read_bytes(), wait=0.3)
        answered += bool(replies)
    await _still_serving(harness, "jp1")
    record_security_result(results_dir, "scapy-rfc4475-corpus",
                   "The RFC 4475 torture corpus sent raw from spoofed sources: node keeps serving",
                   region="jp1", passed=True, pins=["RFC 4475"],
                   notes=[f"{len(files)} messages sent as single datagrams from 127.0.9.x; "
                          f"{answered} drew an answer at the spoofed source (the rest are "
                          "responses, or requests whose Via points elsewhere)",
                          "afterwards an authenticated call is answered 200"])
