"""The registrar's binding stores: one process's memory, and the SQLite file the processes
of ``siptwin up --workers N`` share (two connections stand for two processes)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from siptwin.regions.registrar import Binding, MemoryBindings, SqliteBindings

AOR = "sip:alice@acme.sip.twilio.com"


def _binding(contact: str, expires_at: float) -> Binding:
    return Binding(contact, expires_at, "udp:127.0.0.1:5062", "alice")


def _register(store, aor: str, contact: str, expires_at: float, now: float) -> None:
    with store.updating(aor, now) as change:
        change.bindings[contact] = _binding(contact, expires_at)
        change.keep = True


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryBindings()
        return
    shared = SqliteBindings(tmp_path / "registrations.sqlite3", fresh=True)
    yield shared
    shared.close()


def test_a_change_is_kept_only_when_asked_and_bindings_expire(store) -> None:
    _register(store, AOR, "sip:alice@127.0.0.1:5062", 100.0, now=0.0)
    with store.updating(AOR, 1.0) as change:  # a refused REGISTER: nothing is kept
        change.bindings.clear()
    assert list(store.current(AOR, 50.0)) == ["sip:alice@127.0.0.1:5062"]
    assert store.current(AOR, 100.0) == {}


def test_the_processes_share_bindings_and_none_loses_anothers(tmp_path) -> None:
    path = tmp_path / "registrations.sqlite3"
    parent, worker = SqliteBindings(path, fresh=True), SqliteBindings(path)
    try:
        _register(worker, AOR, "sip:alice@127.0.0.1:5062", 600.0, now=0.0)
        assert list(parent.current(AOR, 1.0)) == ["sip:alice@127.0.0.1:5062"]
        # Both refresh the AOR at once, each adding its own contact: both are kept.
        errors: list[BaseException] = []

        def register(store: SqliteBindings, contact: str) -> None:
            try:
                for round_ in range(20):
                    _register(store, AOR, f"{contact};n={round_ % 2}", 600.0, now=1.0)
            except BaseException as err:  # noqa: BLE001 (reported below)
                errors.append(err)

        threads = [threading.Thread(target=register, args=(parent, "sip:alice@10.0.0.1")),
                   threading.Thread(target=register, args=(worker, "sip:alice@10.0.0.2"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert len(worker.current(AOR, 2.0)) == 5
    finally:
        parent.close()
        worker.close()


def test_expired_rows_leave_the_table_and_a_new_twin_starts_empty(tmp_path) -> None:
    path = tmp_path / "registrations.sqlite3"
    store = SqliteBindings(path, fresh=True)
    for index in range(50):
        _register(store, f"sip:u{index}@acme.sip.twilio.com", "sip:u@127.0.0.1", 10.0, now=0.0)
    _register(store, AOR, "sip:alice@127.0.0.1:5062", 700.0, now=20.0)  # any change sweeps
    rows = sqlite3.connect(path).execute("SELECT count(*) FROM bindings").fetchone()[0]
    assert rows == 1
    store.close()
    assert SqliteBindings(path, fresh=True).current(AOR, 21.0) == {}
