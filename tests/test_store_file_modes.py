"""Store files are private: the database and its side files have mode 0600."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest
from scheduler_support import T0, make_scheduler, request

from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import StorageError
from callsure.engine.store import SQLiteStore


@pytest.fixture
def umask_022():
    # The usual umask, which leaves files that SQLite creates readable by all.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_store_files_owner_only(tmp_path, umask_022):
    db = tmp_path / "promises.db"
    scheduler = make_scheduler(db, VirtualClock(T0))
    scheduler.create(request("c1"))

    assert mode_of(db) == 0o600
    assert mode_of(f"{db}-wal") == 0o600
    assert mode_of(f"{db}-shm") == 0o600


def test_rollback_journal_owner_only(tmp_path, umask_022):
    db = tmp_path / "promises.db"
    SQLiteStore(db).close()
    # PERSIST keeps the rollback journal after the commit, so its mode can
    # be read.
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("PRAGMA journal_mode=PERSIST")
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("INSERT INTO settings (name, value) VALUES ('probe', x'00')")
    raw.execute("COMMIT")
    raw.close()

    assert mode_of(f"{db}-journal") == 0o600


def test_existing_wide_store_narrowed(tmp_path, umask_022):
    db = tmp_path / "promises.db"
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE probe (x)")
    raw.close()
    os.chmod(db, 0o644)
    assert mode_of(db) == 0o644

    SQLiteStore(db).close()

    assert mode_of(db) == 0o600


def test_store_in_missing_folder_not_created(tmp_path):
    db = tmp_path / "missing-folder" / "promises.db"
    with pytest.raises(StorageError, match="missing-folder"):
        SQLiteStore(db)
    assert not db.parent.exists()
