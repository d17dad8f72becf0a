"""The per-item capture keeps the last item's packets however late dumpcap runs at the stop."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from siptwin.harness.pcap import SessionCapture
from tests.support.peers import require_tool

NETWORK = "127.0.199.0/24"  # used by no region node and no other test: this capture sees only its own


@pytest.fixture
def dumpcap_as_root() -> None:
    require_tool("dumpcap")
    if os.geteuid() != 0:
        pytest.fail("a capture on lo needs root (CI runs as root)")


def test_a_datagram_sent_just_before_the_stop_is_in_the_last_items_pcap_even_when_dumpcap_lags(
        tmp_path: Path, dumpcap_as_root: None) -> None:
    capture = SessionCapture(tmp_path, NETWORK, worker="lag")
    capture.start()
    try:
        began = time.time()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"INVITE of the last item", ("127.0.199.7", 5060))
        ended = time.time()
        item = capture.item("last.pcap", began, ended)
        # dumpcap starved of CPU at the stop (two xdist workers and a twin on two cores): held
        # for half a second while the stop begins. A fixed pause before SIGINT lost the packet.
        assert capture._proc is not None
        os.kill(capture._proc.pid, signal.SIGSTOP)
        threading.Timer(0.5, os.kill, (capture._proc.pid, signal.SIGCONT)).start()
        written = capture.stop_and_split()
    finally:
        if capture._proc is not None:
            os.kill(capture._proc.pid, signal.SIGCONT)
            capture._proc.kill()
    assert written == [item]
    data = item.read_bytes()
    assert b"INVITE of the last item" in data
    assert b"siptwin-capture-end" not in data  # the stop's own datagram is left out
    assert not capture.raw_file.exists()


def test_a_stop_whose_token_cannot_be_sent_still_stops_dumpcap_and_splits(
        tmp_path: Path, dumpcap_as_root: None) -> None:
    # An IPv6 network: dumpcap captures it, the stop's IPv4 socket cannot send to it (OSError).
    capture = SessionCapture(tmp_path, "::1/128", worker="v6")
    capture.start()
    proc = capture._proc
    assert proc is not None
    try:
        item = capture.item("only.pcap", time.time(), time.time())
        written = capture.stop_and_split()
    finally:
        proc.kill()
    assert proc.returncode is not None and proc.returncode != -signal.SIGKILL
    assert written == [item] and item.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"
