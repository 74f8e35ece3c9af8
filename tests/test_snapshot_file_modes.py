"""Snapshot files are private: mode 0600, whatever the umask.

Customer shards write their customer ids, phone numbers for callers the
IVR identified, with ``SnapshotFile``. The files here are real msgpack
files written and read back by it.
"""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from callsure.actors.snapshot import SnapshotFile

STATE = {"customers": {"+14155550100": {"calls": 2}}}


@pytest.fixture
def umask_022():
    # The usual umask, which leaves new files readable by all.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def save(path) -> SnapshotFile:
    snapshot = SnapshotFile(path, lambda: STATE, interval_s=60.0)
    asyncio.run(snapshot.save_now())
    return snapshot


def test_new_snapshot_owner_only(tmp_path, umask_022):
    path = tmp_path / "callsure.db.customers-0.msgpack"
    snapshot = save(path)

    assert mode_of(path) == 0o600
    assert snapshot.load() == STATE


def test_rewritten_snapshot_owner_only(tmp_path, umask_022):
    path = tmp_path / "callsure.db.customers-0.msgpack"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    # A temporary file left by a crash during an earlier save.
    leftover = tmp_path / "callsure.db.customers-0.msgpack.tmp"
    leftover.write_bytes(b"partial")
    os.chmod(leftover, 0o644)

    save(path)

    assert mode_of(path) == 0o600
    assert not leftover.exists()


def test_loaded_wide_snapshot_narrowed(tmp_path, umask_022):
    path = tmp_path / "callsure.db.customers-0.msgpack"
    save(path)
    os.chmod(path, 0o644)

    loaded = SnapshotFile(path, dict, interval_s=60.0).load()

    assert loaded == STATE
    assert mode_of(path) == 0o600
