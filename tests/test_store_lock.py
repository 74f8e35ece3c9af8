"""One process writes a store at a time: the flock on ``<db>.lock``.

Other processes are real Python subprocesses that open the same SQLite
file; the kernel drops their lock when they exit, SIGKILL included.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

from callsure.engine.exceptions import StorageError
from callsure.engine.store import SQLiteStore
from callsure.engine.store.files import SERVE_PID_ENV

PROCESS_TIMEOUT_S = 60.0

# Opens the store, reports the outcome on stdout, and keeps the store open
# until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from callsure.engine.exceptions import StorageError
    from callsure.engine.store import SQLiteStore

    try:
        store = SQLiteStore(sys.argv[1])
    except StorageError as error:
        print("FAILED", error, flush=True)
        sys.exit(0)
    print("OPENED", flush=True)
    sys.stdin.read()
    store.close()
    """
)


def start_holder(db) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline().strip()


def stop_holder(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(PROCESS_TIMEOUT_S)


def open_elsewhere(db) -> str:
    """Open the store in another process and return its first output line."""
    process, line = start_holder(db)
    stop_holder(process)
    return line


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


@pytest.fixture
def holder(db):
    process, line = start_holder(db)
    assert line == "OPENED", process.stderr.read()
    yield process
    if process.poll() is None:
        stop_holder(process)


def test_second_process_rejected_naming_holder(db, holder):
    with pytest.raises(StorageError) as info:
        SQLiteStore(db)
    assert str(db) in str(info.value)
    assert f"{db}.lock" in str(info.value)
    assert f"process {holder.pid}" in str(info.value)


def test_rejected_open_changes_nothing(db, holder):
    files = sorted(os.listdir(db.parent))
    with pytest.raises(StorageError):
        SQLiteStore(db)
    assert sorted(os.listdir(db.parent)) == files


def test_lock_free_after_holder_closes(db, holder):
    stop_holder(holder)
    store = SQLiteStore(db)
    assert store.count_callbacks() == 0
    store.close()


def test_lock_free_after_holder_sigkill(db, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(PROCESS_TIMEOUT_S)
    assert holder.returncode == -signal.SIGKILL
    store = SQLiteStore(db)
    assert store.count_callbacks() == 0
    store.close()


def test_lock_file_names_pid_owner_only(db):
    store = SQLiteStore(db)
    lock = db.parent / "promises.db.lock"
    assert lock.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    store.close()


def test_lock_names_serve_of_worker(db, monkeypatch):
    # A Ray worker of `callsure serve` inherits SERVE_PID_ENV; here the
    # holder subprocess inherits it from this process.
    monkeypatch.setenv(SERVE_PID_ENV, "31133")
    process, line = start_holder(db)
    try:
        assert line == "OPENED", process.stderr.read()
        lock = db.parent / "promises.db.lock"
        assert lock.read_text() == f"{process.pid}\nserve 31133\n"
        monkeypatch.delenv(SERVE_PID_ENV)
        with pytest.raises(StorageError) as info:
            SQLiteStore(db)
    finally:
        stop_holder(process)
    expected = f"process {process.pid} (a worker of callsure serve, process 31133)"
    assert expected in str(info.value)


def test_serve_itself_names_one_process(db, monkeypatch):
    monkeypatch.setenv(SERVE_PID_ENV, str(os.getpid()))
    store = SQLiteStore(db)
    lock = db.parent / "promises.db.lock"
    assert lock.read_text() == f"{os.getpid()}\n"
    store.close()


def test_same_process_stores_share_lock(db):
    first = SQLiteStore(db)
    second = SQLiteStore(db)
    first.close()
    assert open_elsewhere(db).startswith("FAILED")
    assert second.count_callbacks() == 0
    second.close()
    assert open_elsewhere(db) == "OPENED"


def test_close_twice_releases_once(db):
    first = SQLiteStore(db)
    second = SQLiteStore(db)
    first.close()
    first.close()
    assert open_elsewhere(db).startswith("FAILED")
    second.close()


def test_failed_open_releases_lock(db):
    SQLiteStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(StorageError, match="schema version 99"):
        SQLiteStore(db)
    # The other process gets past the lock to the same schema check.
    line = open_elsewhere(db)
    assert "schema version 99" in line
    assert "in use" not in line


def test_link_to_store_takes_same_lock(db, holder):
    link = db.parent / "link.db"
    link.symlink_to(db)
    with pytest.raises(StorageError, match=f"process {holder.pid}"):
        SQLiteStore(link)


def test_memory_store_takes_no_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = SQLiteStore(":memory:")
    second = SQLiteStore(":memory:")
    assert os.listdir(tmp_path) == []
    first.close()
    second.close()


def test_serve_logs_lock_wait_once(db, holder, caplog):
    # With a wait shorter than the log interval, the start of the wait is
    # the one line logged, however often the lock is tried.
    from callsure.actors.serve_cli import LOCK_LOG_EVERY_S, _wait_for_writer_lock

    caplog.set_level(logging.INFO, logger="callsure.actors.serve_cli")
    with pytest.raises(StorageError, match=f"in use by process {holder.pid}"):
        _wait_for_writer_lock(db, wait_s=LOCK_LOG_EVERY_S / 2)
    waits = [r for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waits) == 1
    assert f"in use by process {holder.pid}" in waits[0].getMessage()
