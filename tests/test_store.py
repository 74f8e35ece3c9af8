"""The SQLite store: durability settings, guards, batches, journal rebuild."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

import pytest
from scheduler_support import T0, make_scheduler, request

from callsure.engine.callbacks import Attempt, AttemptState, CallbackMode, Outcome
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import LeaseError, StorageError
from callsure.engine.store import Change, SQLiteStore
from callsure.engine.store.journal import decode_payload


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


def test_wal_and_full_sync(db):
    store = SQLiteStore(db)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # 2 is FULL in SQLite's numbering (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA).
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_unwritable_path_raises_storage_error(tmp_path):
    with pytest.raises(StorageError, match="writable"):
        SQLiteStore(tmp_path / "missing-folder" / "promises.db")


def test_newer_schema_rejected(db):
    SQLiteStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(StorageError, match="schema version 99"):
        SQLiteStore(db)


def test_stale_version_rejected_and_nothing_written(db, clock):
    scheduler = make_scheduler(db, clock)
    callback = scheduler.create(request("c1"))
    scheduler.cancel(callback.callback_id, "customer asked")
    stale = callback.evolve(clock.now(), reason="stale writer")
    change = Change(callbacks=[stale])
    change.event(clock.now(), "callback.updated", callback.callback_id)
    before = len(scheduler.store.read_events(0, 100))
    with pytest.raises(LeaseError, match="changed concurrently"):
        scheduler.store.commit(change)
    assert len(scheduler.store.read_events(0, 100)) == before
    assert scheduler.get(callback.callback_id).reason == "customer asked"


def test_second_open_attempt_rejected(db, clock):
    scheduler = make_scheduler(db, clock)
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    attempt = scheduler.store.get_attempt(order.attempt_id)
    twin = replace(attempt, attempt_id=f"{order.callback_id}/9", number=9)
    with pytest.raises(LeaseError, match="in flight"):
        scheduler.store.commit(Change(attempts=[(twin, None)]))


def test_attempt_state_guard(db, clock):
    scheduler = make_scheduler(db, clock)
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    attempt: Attempt = scheduler.store.get_attempt(order.attempt_id)
    dialing = replace(attempt, state=AttemptState.DIALING)
    scheduler.store.commit(Change(attempts=[(dialing, AttemptState.ISSUED)]))
    with pytest.raises(LeaseError, match="no longer issued"):
        scheduler.store.commit(Change(attempts=[(dialing, AttemptState.ISSUED)]))


def test_batch_rolls_back_failed_change_alone(db, clock):
    scheduler = make_scheduler(db, clock)
    store = scheduler.store
    with store.batch():
        kept = scheduler.create(request("c1"))
        stale = replace(kept, version=5)
        with pytest.raises(LeaseError):
            store.commit(Change(callbacks=[stale]))
        other = scheduler.create(request("c2"))
    reopened = SQLiteStore(db)
    assert reopened.get_callback(kept.callback_id) == kept
    assert reopened.get_callback(other.callback_id) == other


def test_batch_error_loses_whole_batch(db, clock):
    scheduler = make_scheduler(db, clock)
    with pytest.raises(RuntimeError), scheduler.store.batch():
        scheduler.create(request("c1"))
        raise RuntimeError("crash inside the batch")
    assert SQLiteStore(db).count_callbacks() == 0


def test_batches_do_not_nest(db):
    store = SQLiteStore(db)
    with pytest.raises(StorageError, match="nest"), store.batch(), store.batch():
        pass


def test_rebuild_from_journal_matches_tables(db, clock):
    scheduler = make_scheduler(db, clock)
    for customer in ("c1", "c2", "c3"):
        scheduler.create(request(customer))
    orders = scheduler.due()
    scheduler.start_dialing(orders[0].attempt_id, "gw")
    scheduler.report_outcome(orders[0].attempt_id, Outcome.BUSY)
    scheduler.report_outcome(orders[1].attempt_id, Outcome.NOT_DIALED)
    clock.advance(600)
    scheduler.due()
    store = scheduler.store
    callbacks = sorted(store.list_callbacks(limit=100), key=lambda c: c.callback_id)
    attempts = {
        a.attempt_id: a for c in callbacks for a in store.attempts_of(c.callback_id)
    }

    restored = store.rebuild_state()

    assert restored == 3
    assert store.count_booked("billing", T0, T0 + timedelta(days=1)) == 0
    assert (
        sorted(store.list_callbacks(limit=100), key=lambda c: c.callback_id)
        == callbacks
    )
    rebuilt = {
        a.attempt_id: a for c in callbacks for a in store.attempts_of(c.callback_id)
    }
    assert rebuilt == attempts
    dialed = [a for a in attempts.values() if a.outcome is not Outcome.NOT_DIALED]
    assert store.count_released("billing", T0, T0 + timedelta(hours=1)) == len(dialed)


def test_corrupt_payload_raises_storage_error():
    with pytest.raises(StorageError, match="corrupt"):
        decode_payload(b"\xc1")


def test_bookings_follow_promise_changes(db, clock):
    scheduler = make_scheduler(db, clock)
    store = scheduler.store
    hour = (T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=15))
    when = T0 + timedelta(hours=1, minutes=5)
    first = scheduler.create(
        request("c1", mode=CallbackMode.AT_TIME, requested_time=when)
    )
    scheduler.create(request("c2", mode=CallbackMode.AT_TIME, requested_time=when))
    assert store.count_booked("billing", *hour) == 2
    assert store.count_booked("billing", *hour, exclude_id=first.callback_id) == 1
    scheduler.cancel(first.callback_id)
    assert store.count_booked("billing", *hour) == 1
    store.rebuild_state()
    assert store.count_booked("billing", *hour) == 1


def test_open_promises_counted_by_entry(db, clock):
    scheduler = make_scheduler(db, clock)
    store = scheduler.store
    entries = [T0 - timedelta(minutes=m) for m in (9, 6, 3)]
    created = [
        scheduler.create(request(f"c{i}", entry_time=entry))
        for i, entry in enumerate(entries)
    ]
    chosen = T0 + timedelta(hours=2)
    scheduler.create(
        request(
            "c8",
            mode=CallbackMode.AT_TIME,
            requested_time=chosen,
            entry_time=entries[0],
        )
    )
    # A customer-chosen time is not a place in the queue.
    assert store.count_open_before("billing", entries[1]) == 2
    assert store.count_open_before("billing", entries[2]) == 3
    assert store.count_open_before("sales", entries[2]) == 0
    excluded = store.count_open_before(
        "billing", entries[2], exclude_id=created[0].callback_id
    )
    assert excluded == 2
    scheduler.cancel(created[0].callback_id)
    assert store.count_open_before("billing", entries[2]) == 2
