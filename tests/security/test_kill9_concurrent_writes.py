"""``kill -9`` during concurrent REST writes (issue 15's standing attack suite).

tests/cloud/test_durability.py kills the control plane under one writer; here four writers
(each its own SDK client and connection) write four kinds of record at once - credential
lists, credentials, IP addresses, and updates of one domain - and the process is killed three
times in a row. After every restart each acknowledged write is there (an update at least as
new as the last acknowledged one), and SQLite's ``integrity_check`` and ``foreign_key_check``
find nothing.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from siptwin.cloud.store import database_path
from tests.cloud.test_durability import _client, _start

ROUNDS = 3
WRITES_BEFORE_KILL = 120  # acknowledged, over all writers, per round


def _writers(url: str, list_sid: str, acl_sid: str, domain_sid: str,
             round_: int) -> list[Callable[[int], str]]:
    lists, credentials, addresses, domains = (_client(url).sip for _ in range(4))
    return [
        lambda i: lists.credential_lists.create(friendly_name=f"r{round_} list {i}").sid,
        lambda i: credentials.credential_lists(list_sid).credentials.create(
            username=f"r{round_}u{i}", password=f"Harbour{i}Lights").sid,
        lambda i: addresses.ip_access_control_lists(acl_sid).ip_addresses.create(
            friendly_name=f"r{round_} a{i}", ip_address=f"10.{round_}.{i // 250}.{i % 250}").sid,
        lambda i: domains.domains(domain_sid).update(friendly_name=f"r{round_:02d}-{i:06d}")
        .friendly_name,
    ]


def _write_until_killed(kind: str, write: Callable[[int], str],
                        acknowledged: dict[str, list[str]], attempts: list[int],
                        lock: threading.Lock, enough: threading.Event, target: int) -> None:
    for index in range(100_000):
        with lock:
            attempts[0] += 1
        try:
            value = write(index)
        except Exception:
            return  # killed mid-request: never acknowledged
        with lock:
            acknowledged[kind].append(value)
            if sum(map(len, acknowledged.values())) >= target:
                enough.set()


def _check_database(state: Path) -> None:
    with sqlite3.connect(database_path(state)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []


def test_every_acknowledged_concurrent_write_survives_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process, url = _start(state)
    sip = _client(url).sip
    list_sid = sip.credential_lists.create(friendly_name="users").sid
    acl_sid = sip.ip_access_control_lists.create(friendly_name="addresses").sid
    domain_sid = sip.domains.create(domain_name="durable.sip.twilio.com").sid
    kinds = ("credential_lists", "credentials", "ip_addresses", "domain_updates")
    acknowledged: dict[str, list[str]] = {kind: [] for kind in kinds}
    attempts = [0]
    lost = 0
    began = time.monotonic()
    try:
        for round_ in range(ROUNDS):
            enough = threading.Event()
            lock = threading.Lock()

            threads = [threading.Thread(target=_write_until_killed,
                                        args=(kind, write, acknowledged, attempts, lock, enough,
                                              WRITES_BEFORE_KILL * (round_ + 1)))
                       for kind, write in zip(kinds, _writers(url, list_sid, acl_sid, domain_sid,
                                                              round_), strict=True)]
            for thread in threads:
                thread.start()
            assert enough.wait(60), {k: len(v) for k, v in acknowledged.items()}
            os.kill(process.pid, signal.SIGKILL)
            for thread in threads:
                thread.join(30)
            process.wait(10)

            _check_database(state)
            process, url = _start(state)
            sip = _client(url).sip
            stored_lists = {c.sid for c in sip.credential_lists.list(page_size=1000)}
            stored_credentials = {c.sid for c in sip.credential_lists(list_sid).credentials.list(
                page_size=1000)}
            stored_addresses = {a.sid for a in sip.ip_access_control_lists(acl_sid).ip_addresses
                                .list(page_size=1000)}
            name = sip.domains(domain_sid).fetch().friendly_name
            lost += len(set(acknowledged["credential_lists"]) - stored_lists)
            lost += len(set(acknowledged["credentials"]) - stored_credentials)
            lost += len(set(acknowledged["ip_addresses"]) - stored_addresses)
            if acknowledged["domain_updates"]:  # names sort in write order
                lost += name < max(acknowledged["domain_updates"])
            assert lost == 0, (round_, lost, name)
    finally:
        process.terminate()
        process.wait(10)
    _check_database(state)
    counted = {kind: len(values) for kind, values in acknowledged.items()}
    print(f"\nkill -9 x{ROUNDS} under 4 concurrent writers: {attempts[0]} writes tried, "
          f"{sum(counted.values())} acknowledged {counted}, {lost} lost, integrity_check ok, "
          f"{time.monotonic() - began:.1f} s")
