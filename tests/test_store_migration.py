"""Schema migration of the SQLite store: request fingerprints, version 1 to 2.

Version 1 kept each request's fingerprint in the settings table; version 2
keeps it in a column of the requests table. The version-1 files here are
written by the current scheduler and then turned back into the version-1
layout with plain SQL, so they contain real promises, requests and events.
"""

from __future__ import annotations

import sqlite3

import pytest
from scheduler_support import T0, make_scheduler, request

from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import RequestIdReusedError, StorageError
from callsure.engine.store import Change, SQLiteStore
from callsure.engine.store.migrations import FINGERPRINT_SETTING_PREFIX
from callsure.engine.store.sqlite import SCHEMA_VERSION


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


def downgrade_to_version_1(db) -> None:
    """Rewrite a current store in the layout of schema version 1."""
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("BEGIN")
    raw.execute(
        "INSERT INTO settings (name, value) "
        "SELECT ? || request_id, fingerprint FROM requests "
        "WHERE fingerprint IS NOT NULL",
        (FINGERPRINT_SETTING_PREFIX,),
    )
    raw.execute(
        "CREATE TABLE requests_v1 (request_id TEXT PRIMARY KEY, "
        "callback_id TEXT NOT NULL)"
    )
    raw.execute("INSERT INTO requests_v1 SELECT request_id, callback_id FROM requests")
    raw.execute("DROP TABLE requests")
    raw.execute("ALTER TABLE requests_v1 RENAME TO requests")
    raw.execute("PRAGMA user_version=1")
    raw.execute("COMMIT")
    raw.close()


def columns(db, table: str) -> list[str]:
    raw = sqlite3.connect(db)
    names = [row[1] for row in raw.execute(f"PRAGMA table_info({table})")]
    raw.close()
    return names


def fingerprint_settings(db) -> int:
    raw = sqlite3.connect(db)
    (count,) = raw.execute(
        "SELECT COUNT(*) FROM settings WHERE substr(name, 1, ?) = ?",
        (len(FINGERPRINT_SETTING_PREFIX), FINGERPRINT_SETTING_PREFIX),
    ).fetchone()
    raw.close()
    return count


def user_version(db) -> int:
    raw = sqlite3.connect(db)
    (version,) = raw.execute("PRAGMA user_version").fetchone()
    raw.close()
    return version


@pytest.fixture
def version_1_store(db, clock):
    """A version-1 file with two fingerprinted requests and an admin setting."""
    scheduler = make_scheduler(db, clock)
    first = scheduler.create(request("c1", request_id="r-1", phone="+14155550199"))
    second = scheduler.create(request("c2", request_id="r-2", phone="+14155550177"))
    scheduler.store.commit(Change(settings={"policy:probe": b"kept"}))
    scheduler.store.close()
    downgrade_to_version_1(db)
    assert user_version(db) == 1
    assert "fingerprint" not in columns(db, "requests")
    assert fingerprint_settings(db) == 2
    return first, second


def test_new_store_at_current_version(db):
    SQLiteStore(db).close()
    assert user_version(db) == SCHEMA_VERSION
    assert "fingerprint" in columns(db, "requests")


def test_fingerprint_stored_in_requests_column(db, clock):
    scheduler = make_scheduler(db, clock)
    scheduler.create(request("c1", request_id="r-1"))

    assert scheduler.store.request_fingerprint("r-1") is not None
    assert fingerprint_settings(db) == 0


def test_version_1_migrated_on_open(db, version_1_store):
    store = SQLiteStore(db)

    assert user_version(db) == SCHEMA_VERSION
    assert "fingerprint" in columns(db, "requests")
    assert fingerprint_settings(db) == 0
    assert store.request_fingerprint("r-1") is not None
    assert store.request_fingerprint("r-2") is not None
    assert store.request_fingerprint("r-1") != store.request_fingerprint("r-2")
    store.close()


def test_migration_keeps_other_settings(db, version_1_store):
    store = SQLiteStore(db)
    assert store.get_setting("policy:probe") == b"kept"
    store.close()


def test_migrated_replay_returns_first(db, clock, version_1_store):
    first, _ = version_1_store
    scheduler = make_scheduler(db, clock)
    replay = scheduler.create(request("c1", request_id="r-1", phone="+14155550199"))
    assert replay == first


def test_migrated_reused_id_rejected(db, clock, version_1_store):
    scheduler = make_scheduler(db, clock)
    with pytest.raises(RequestIdReusedError):
        scheduler.create(request("c1", request_id="r-1", phone="+14155550166"))


def test_request_without_fingerprint_replays(db, clock, version_1_store):
    # Ids stored before fingerprints existed have none and replay as before.
    _, second = version_1_store
    raw = sqlite3.connect(db)
    raw.execute("DELETE FROM settings WHERE name = ?", ("request_fingerprint:r-2",))
    raw.commit()
    raw.close()

    scheduler = make_scheduler(db, clock)
    assert scheduler.store.request_fingerprint("r-2") is None
    other_body = request("c2", request_id="r-2", phone="+14155550166")
    assert scheduler.create(other_body) == second


def test_second_open_migrates_nothing(db, version_1_store):
    SQLiteStore(db).close()
    raw = sqlite3.connect(db)
    before = raw.execute("SELECT request_id, fingerprint FROM requests").fetchall()
    raw.close()

    SQLiteStore(db).close()

    raw = sqlite3.connect(db)
    after = raw.execute("SELECT request_id, fingerprint FROM requests").fetchall()
    raw.close()
    assert after == before


def test_newer_version_rejected_unchanged(db):
    SQLiteStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()

    with pytest.raises(StorageError, match="newer callsure release"):
        SQLiteStore(db)
    assert user_version(db) == SCHEMA_VERSION + 1


def test_change_records_fingerprint_tuple(db):
    store = SQLiteStore(db)
    store.commit(Change(requests=[("r-1", "cb-1", b"digest")]))
    store.commit(Change(requests=[("r-1", "cb-2")]))

    assert store.callback_for_request("r-1") == "cb-2"
    assert store.request_fingerprint("r-1") == b"digest"
    assert store.request_fingerprint("r-unknown") is None
    store.close()


def test_merged_request_fingerprint_in_column(db, clock):
    scheduler = make_scheduler(db, clock)
    first = scheduler.create(request("c1", request_id="r-1"))
    merged = scheduler.create(request("c1", request_id="r-2"))

    assert merged.callback_id == first.callback_id
    assert scheduler.store.request_fingerprint("r-2") is not None
    assert fingerprint_settings(db) == 0


def test_version_1_setting_name_is_plain_setting(db):
    # Since version 2 only the requests column contains fingerprints, so a
    # setting under the version-1 name changes no request.
    store = SQLiteStore(db)
    store.commit(Change(requests=[("r-1", "cb-1", b"digest")]))
    name = FINGERPRINT_SETTING_PREFIX + "r-1"
    store.commit(Change(settings={name: b"other"}))

    assert store.request_fingerprint("r-1") == b"digest"
    assert store.get_setting(name) == b"other"
    store.close()
