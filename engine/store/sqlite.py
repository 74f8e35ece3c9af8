"""The SQLite backend of the callback store.

One database file in WAL mode with ``synchronous=FULL``: a commit returns
only after the write-ahead log is synced to disk, so an acknowledged
promise survives a crash of the process or of the machine. Each row keeps
the indexed columns beside the whole row encoded with msgpack.

The database contains customers' phone numbers, so the store creates it
with mode 0600 (owner only), and SQLite gives its ``-wal``, ``-shm`` and
``-journal`` files the mode of the database. Opening a store made by an
earlier release with a wider mode narrows its files to 0600.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from callsure.engine.callbacks import (
    Attempt,
    AttemptState,
    Callback,
    CallbackMode,
    CallbackState,
    Event,
    Outcome,
    from_epoch,
)
from callsure.engine.campaigns import Campaign
from callsure.engine.exceptions import LeaseError, StorageError
from callsure.engine.store.files import WriterLock, create_private
from callsure.engine.store.interface import Change
from callsure.engine.store.journal import (
    decode_payload,
    encode_payload,
    rebuild_campaign_rows,
    rebuild_rows,
)
from callsure.engine.store.migrations import CAMPAIGN_INDEX, migrate

logger = logging.getLogger(__name__)

# Versions and their migrations: callsure.engine.store.migrations.
SCHEMA_VERSION = 3

_OPEN_STATES = (CallbackState.PENDING.value, CallbackState.DIALING.value)
# Written out in queries on the partial index callbacks_promised: SQLite uses
# a partial index only when the query's WHERE names its condition literally.
_OPEN_STATES_SQL = str(_OPEN_STATES)  # "('pending', 'dialing')"
# Modes whose promises are places in the queue, on the partial index
# callbacks_place.
_PLACE_MODES_SQL = str((CallbackMode.PREDICTED.value, CallbackMode.ASAP.value))
_CAMPAIGN = CallbackMode.CAMPAIGN.value

_SCHEMA = """
CREATE TABLE IF NOT EXISTS callbacks (
    callback_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    mode TEXT NOT NULL,
    entry_time REAL NOT NULL,
    promised_time REAL,
    not_before REAL NOT NULL,
    expires_at REAL NOT NULL,
    version INTEGER NOT NULL,
    row BLOB NOT NULL,
    -- Set for campaign targets (mode 'campaign'); added in version 3.
    campaign_id TEXT
);
CREATE INDEX IF NOT EXISTS callbacks_due
    ON callbacks (state, not_before);
CREATE INDEX IF NOT EXISTS callbacks_customer
    ON callbacks (customer_id, queue, state);
CREATE INDEX IF NOT EXISTS callbacks_promised
    ON callbacks (queue, promised_time) WHERE state IN ('pending', 'dialing');
CREATE INDEX IF NOT EXISTS callbacks_expiry
    ON callbacks (state, expires_at);
-- Places in the queue: open promises without a customer-chosen time.
CREATE INDEX IF NOT EXISTS callbacks_place
    ON callbacks (queue, entry_time, state, mode)
    WHERE state IN ('pending', 'dialing') AND mode IN ('predicted', 'asap');
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY,
    callback_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    issued_at REAL NOT NULL,
    lease_expires_at REAL NOT NULL,
    row BLOB NOT NULL,
    UNIQUE (callback_id, number)
);
-- At most one attempt in flight per callback, whatever the caller does.
CREATE UNIQUE INDEX IF NOT EXISTS attempts_one_open
    ON attempts (callback_id) WHERE state != 'final';
CREATE INDEX IF NOT EXISTS attempts_lease
    ON attempts (state, lease_expires_at);
CREATE INDEX IF NOT EXISTS attempts_released
    ON attempts (queue, issued_at);
-- fingerprint: digest of the request's fields, NULL for requests stored
-- before schema version 2 without one.
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    callback_id TEXT NOT NULL,
    fingerprint BLOB
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    callback_id TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    row BLOB NOT NULL
);
-- The latest time each customer reached an agent, recorded while a
-- campaign is running or paused, so a campaign does not call them again.
CREATE TABLE IF NOT EXISTS reached_agents (
    customer_id TEXT PRIMARY KEY,
    reached_at REAL NOT NULL
) WITHOUT ROWID;
-- Open timed promises per queue and minute of their promised time, kept by
-- triggers in the same transaction as the callbacks rows.
-- NOTE: count_booked no longer reads this table, because a booking stops
-- counting at its first release while the promise is still open; the table
-- stays so that stores created earlier keep the same schema.
CREATE TABLE IF NOT EXISTS bookings (
    queue TEXT NOT NULL,
    minute INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (queue, minute)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS bookings_insert AFTER INSERT ON callbacks
WHEN NEW.state IN ('pending', 'dialing') AND NEW.promised_time IS NOT NULL
BEGIN
    INSERT INTO bookings (queue, minute, count)
    VALUES (NEW.queue, CAST(NEW.promised_time / 60 AS INTEGER), 1)
    ON CONFLICT (queue, minute) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS bookings_update_old
AFTER UPDATE OF queue, state, promised_time ON callbacks
WHEN OLD.state IN ('pending', 'dialing') AND OLD.promised_time IS NOT NULL
BEGIN
    UPDATE bookings SET count = count - 1
    WHERE queue = OLD.queue AND minute = CAST(OLD.promised_time / 60 AS INTEGER);
END;
CREATE TRIGGER IF NOT EXISTS bookings_update_new
AFTER UPDATE OF queue, state, promised_time ON callbacks
WHEN NEW.state IN ('pending', 'dialing') AND NEW.promised_time IS NOT NULL
BEGIN
    INSERT INTO bookings (queue, minute, count)
    VALUES (NEW.queue, CAST(NEW.promised_time / 60 AS INTEGER), 1)
    ON CONFLICT (queue, minute) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS bookings_delete AFTER DELETE ON callbacks
WHEN OLD.state IN ('pending', 'dialing') AND OLD.promised_time IS NOT NULL
BEGIN
    UPDATE bookings SET count = count - 1
    WHERE queue = OLD.queue AND minute = CAST(OLD.promised_time / 60 AS INTEGER);
END;
"""


class SQLiteStore:
    """A ``CallbackStore`` in one SQLite file.

    Parameters
    ----------
    path : str or Path
        Database file, created with mode 0600 when missing; ``":memory:"``
        for a throw-away store.
    synchronous : str
        ``FULL`` (default) syncs every commit; ``NORMAL`` may lose the last
        commits on power loss and is meant only for bulk loads in benchmarks.

    Raises
    ------
    StorageError
        When another process has the store open (its lock file
        ``<path>.lock`` names the process id), or when the file cannot be
        created or is not a callsure database of a readable schema.

    Notes
    -----
    The store takes an exclusive ``flock`` on ``<path>.lock`` and keeps it
    until ``close`` or the end of the process; see
    ``callsure.engine.store.files``.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL"):
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise StorageError(
                f"invalid synchronous mode {synchronous!r}: use FULL, NORMAL or EXTRA"
            )
        self.path = str(path)
        self._lock = threading.Lock()
        self._in_batch = False
        self._writer_lock = None
        if self.path != ":memory:":
            # Locked before anything is created or migrated, so a second
            # process stops without touching the files.
            self._writer_lock = WriterLock(self.path)
        try:
            self._open(synchronous)
        except BaseException:
            if self._writer_lock is not None:
                self._writer_lock.release()
            raise
        logger.info("store %s: opened (synchronous=%s)", self.path, synchronous)

    def _open(self, synchronous: str) -> None:
        if self.path != ":memory:":
            try:
                create_private(self.path)
            except OSError as error:
                raise StorageError(
                    f"cannot create the store {self.path}: {error.strerror}; "
                    "check that the folder exists and is writable"
                ) from None
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._check_schema_version()
            # After the migrations, because it names a column version 3 adds.
            self._db.execute(CAMPAIGN_INDEX)
        except sqlite3.Error as error:
            raise StorageError(
                f"cannot open the store {self.path}: {error}; check that the "
                "path is writable and the file is a callsure SQLite database"
            ) from error

    def _check_schema_version(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version == 0:
            # A new database: _SCHEMA has just created the current tables.
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise StorageError(
                f"store {self.path} has schema version {version}, this release "
                f"reads versions up to {SCHEMA_VERSION}; open it with a newer "
                "callsure release"
            )
        elif version < SCHEMA_VERSION:
            migrate(self._db, self.path, version, SCHEMA_VERSION)

    # Writing

    def commit(self, change: Change) -> list[int]:
        if self._in_batch:
            return self._commit_in_batch(change)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    seqs = self._apply(change)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                raise StorageError(
                    f"store {self.path}: write failed: {error}"
                ) from error
        return seqs

    @contextlib.contextmanager
    def batch(self):
        """Group the commits made inside the block into one durable commit.

        Each ``commit`` inside the block runs under its own savepoint: a
        change that fails its guards is rolled back alone and raises, the
        others stay. Nothing is durable until the block ends without an
        error, so a caller announces results obtained inside the block
        only after it. Batches do not nest. Reads inside the block see the
        block's own writes (one connection).
        """
        if self._in_batch:
            raise StorageError("store batches do not nest")
        self._execute("BEGIN IMMEDIATE")
        self._in_batch = True
        try:
            yield self
        except BaseException:
            self._in_batch = False
            self._execute("ROLLBACK")
            raise
        self._in_batch = False
        try:
            self._execute("COMMIT")
        except StorageError:
            with contextlib.suppress(StorageError, sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    def _commit_in_batch(self, change: Change) -> list[int]:
        with self._lock:
            try:
                self._db.execute("SAVEPOINT change")
                try:
                    seqs = self._apply(change)
                except BaseException:
                    self._db.execute("ROLLBACK TO change")
                    self._db.execute("RELEASE change")
                    raise
                self._db.execute("RELEASE change")
            except sqlite3.Error as error:
                raise StorageError(
                    f"store {self.path}: write failed: {error}"
                ) from error
        return seqs

    def _execute(self, sql: str) -> None:
        with self._lock:
            try:
                self._db.execute(sql)
            except sqlite3.Error as error:
                raise StorageError(
                    f"store {self.path}: {sql} failed: {error}"
                ) from error

    def _apply(self, change: Change) -> list[int]:
        db = self._db
        for callback in change.callbacks:
            self._write_callback(callback)
        for attempt, expected in change.attempts:
            self._write_attempt(attempt, expected)
        for request in change.requests:
            request_id, callback_id, *rest = request
            # A request recorded without a fingerprint keeps the stored one.
            db.execute(
                "INSERT INTO requests (request_id, callback_id, fingerprint) "
                "VALUES (?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "
                "callback_id = excluded.callback_id, "
                "fingerprint = coalesce(excluded.fingerprint, fingerprint)",
                (request_id, callback_id, rest[0] if rest else None),
            )
        for name, value in change.settings.items():
            db.execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)",
                (name, value),
            )
        for campaign in change.campaigns:
            self._write_campaign(campaign)
        for customer_id, when in change.reached:
            db.execute(
                "INSERT INTO reached_agents (customer_id, reached_at) VALUES (?, ?) "
                "ON CONFLICT (customer_id) DO UPDATE SET "
                "reached_at = max(reached_at, excluded.reached_at)",
                (customer_id, when.timestamp()),
            )
        seqs = []
        for when, kind, callback_id, payload in change.events:
            cursor = db.execute(
                "INSERT INTO events (time, kind, callback_id, payload) "
                "VALUES (?, ?, ?, ?)",
                (when.timestamp(), kind, callback_id, encode_payload(payload)),
            )
            seqs.append(cursor.lastrowid)
        return seqs

    def _write_callback(self, callback: Callback, *, insert: bool = False) -> None:
        row = callback.to_row()
        values = (
            callback.request_id,
            callback.customer_id,
            callback.queue,
            callback.state.value,
            callback.mode.value,
            row["entry_time"],
            row["promised_time"],
            row["not_before"],
            row["expires_at"],
            callback.version,
            encode_payload(row),
            callback.campaign_id,
            callback.callback_id,
        )
        if insert or callback.version == 1:
            try:
                self._db.execute(
                    "INSERT INTO callbacks (request_id, customer_id, queue, state, "
                    "mode, entry_time, promised_time, not_before, expires_at, "
                    "version, row, campaign_id, callback_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            except sqlite3.IntegrityError:
                raise LeaseError(
                    f"callback {callback.callback_id} already exists"
                ) from None
            return
        cursor = self._db.execute(
            "UPDATE callbacks SET request_id = ?, customer_id = ?, queue = ?, "
            "state = ?, mode = ?, entry_time = ?, promised_time = ?, "
            "not_before = ?, expires_at = ?, version = ?, row = ?, campaign_id = ? "
            "WHERE callback_id = ? AND version = ?",
            (*values, callback.version - 1),
        )
        if cursor.rowcount != 1:
            raise LeaseError(
                f"callback {callback.callback_id} changed concurrently: version "
                f"{callback.version - 1} is no longer current"
            )

    def _write_campaign(self, campaign: Campaign, *, insert: bool = False) -> None:
        values = (
            campaign.request_id,
            campaign.state.value,
            campaign.version,
            encode_payload(campaign.to_row()),
            campaign.campaign_id,
        )
        if insert or campaign.version == 1:
            try:
                self._db.execute(
                    "INSERT INTO campaigns (request_id, state, version, row, "
                    "campaign_id) VALUES (?, ?, ?, ?, ?)",
                    values,
                )
            except sqlite3.IntegrityError:
                raise LeaseError(
                    f"campaign {campaign.campaign_id} or its request id "
                    f"{campaign.request_id!r} already exists"
                ) from None
            return
        cursor = self._db.execute(
            "UPDATE campaigns SET request_id = ?, state = ?, version = ?, row = ? "
            "WHERE campaign_id = ? AND version = ?",
            (*values, campaign.version - 1),
        )
        if cursor.rowcount != 1:
            raise LeaseError(
                f"campaign {campaign.campaign_id} changed concurrently: version "
                f"{campaign.version - 1} is no longer current"
            )

    def _write_attempt(self, attempt: Attempt, expected: AttemptState | None) -> None:
        row = attempt.to_row()
        blob = encode_payload(row)
        if expected is None:
            try:
                self._db.execute(
                    "INSERT INTO attempts (attempt_id, callback_id, queue, number, "
                    "state, outcome, issued_at, lease_expires_at, row) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        attempt.attempt_id,
                        attempt.callback_id,
                        attempt.queue,
                        attempt.number,
                        attempt.state.value,
                        row["outcome"],
                        row["issued_at"],
                        row["lease_expires_at"],
                        blob,
                    ),
                )
            except sqlite3.IntegrityError:
                raise LeaseError(
                    f"attempt {attempt.attempt_id}: the callback already has an "
                    "attempt in flight or this attempt exists"
                ) from None
            return
        cursor = self._db.execute(
            "UPDATE attempts SET state = ?, outcome = ?, lease_expires_at = ?, "
            "row = ? WHERE attempt_id = ? AND state = ?",
            (
                attempt.state.value,
                row["outcome"],
                row["lease_expires_at"],
                blob,
                attempt.attempt_id,
                expected.value,
            ),
        )
        if cursor.rowcount != 1:
            raise LeaseError(
                f"attempt {attempt.attempt_id} is no longer {expected.value}"
            )

    # Reading

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise StorageError(
                    f"store {self.path}: read failed: {error}"
                ) from error

    def _callbacks(self, sql: str, params: tuple = ()) -> list[Callback]:
        return [
            Callback.from_row(decode_payload(r[0])) for r in self._query(sql, params)
        ]

    def _attempts(self, sql: str, params: tuple = ()) -> list[Attempt]:
        return [
            Attempt.from_row(decode_payload(r[0])) for r in self._query(sql, params)
        ]

    def get_callback(self, callback_id: str) -> Callback | None:
        rows = self._callbacks(
            "SELECT row FROM callbacks WHERE callback_id = ?", (callback_id,)
        )
        return rows[0] if rows else None

    def callback_for_request(self, request_id: str) -> str | None:
        rows = self._query(
            "SELECT callback_id FROM requests WHERE request_id = ?", (request_id,)
        )
        return rows[0][0] if rows else None

    def request_fingerprint(self, request_id: str) -> bytes | None:
        rows = self._query(
            "SELECT fingerprint FROM requests WHERE request_id = ?", (request_id,)
        )
        return rows[0][0] if rows else None

    def open_callback_for(self, customer_id: str, queue: str) -> Callback | None:
        rows = self._callbacks(
            "SELECT row FROM callbacks WHERE customer_id = ? AND queue = ? "
            "AND state IN (?, ?) AND mode != ? ORDER BY callback_id LIMIT 1",
            (customer_id, queue, *_OPEN_STATES, _CAMPAIGN),
        )
        return rows[0] if rows else None

    def list_callbacks(
        self,
        *,
        state: str | None = None,
        customer_id: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        after_id: str | None = None,
    ) -> list[Callback]:
        clauses, params = [], []
        for column, value in (
            ("state", state),
            ("customer_id", customer_id),
            ("queue", queue),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if after_id is not None:
            clauses.append("callback_id > ?")
            params.append(after_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._callbacks(
            f"SELECT row FROM callbacks {where} ORDER BY callback_id LIMIT ?",
            (*params, limit),
        )

    def due_queues(self, now: datetime) -> list[str]:
        rows = self._query(
            "SELECT DISTINCT queue FROM callbacks WHERE state = ? AND not_before <= ? "
            "AND mode != ?",
            (CallbackState.PENDING.value, now.timestamp(), _CAMPAIGN),
        )
        return sorted(r[0] for r in rows)

    def due_callbacks(self, queue: str, now: datetime, limit: int) -> list[Callback]:
        return self._callbacks(
            "SELECT row FROM callbacks WHERE state = ? AND not_before <= ? "
            "AND queue = ? AND mode != ? ORDER BY entry_time, callback_id LIMIT ?",
            (CallbackState.PENDING.value, now.timestamp(), queue, _CAMPAIGN, limit),
        )

    def expired_pending(self, now: datetime, limit: int) -> list[Callback]:
        return self._callbacks(
            "SELECT row FROM callbacks WHERE state = ? AND expires_at <= ? "
            "ORDER BY expires_at LIMIT ?",
            (CallbackState.PENDING.value, now.timestamp(), limit),
        )

    def overdue_pending(
        self, before: datetime, limit: int, after_id: str | None = None
    ) -> list[Callback]:
        return self._callbacks(
            "SELECT row FROM callbacks WHERE state = ? AND not_before <= ? "
            "AND callback_id > ? AND mode != ? ORDER BY callback_id LIMIT ?",
            (
                CallbackState.PENDING.value,
                before.timestamp(),
                after_id or "",
                _CAMPAIGN,
                limit,
            ),
        )

    def count_booked(
        self, queue: str, start: datetime, end: datetime, exclude_id: str = ""
    ) -> int:
        # A booking keeps its reservation until its first release that takes
        # an agent. From then on the attempt counts in count_released of the
        # interval it was issued in, so the two counts never overlap. The
        # per-minute bookings table counts every open promise, released or
        # not, so it cannot answer this. The partial index callbacks_promised
        # limits the scan to the open promises of the interval.
        # NOTE: one scan per interval, so a window request that walks many
        # full intervals is slower (bench/RESULTS.md, "Callback promises").
        (count,) = self._query(
            "SELECT COUNT(*) FROM callbacks INDEXED BY callbacks_promised "
            f"WHERE queue = ? AND state IN {_OPEN_STATES_SQL} "
            "AND promised_time >= ? AND promised_time < ? "
            "AND state = ? AND callback_id != ? AND NOT EXISTS ("
            "SELECT 1 FROM attempts WHERE attempts.callback_id = callbacks.callback_id "
            "AND (attempts.outcome IS NULL OR attempts.outcome != ?))",
            (
                queue,
                start.timestamp(),
                end.timestamp(),
                CallbackState.PENDING.value,
                exclude_id,
                Outcome.NOT_DIALED.value,
            ),
        )[0]
        return count

    def latest_promise(
        self, queue: str, entry_time: datetime, exclude_id: str = ""
    ) -> datetime | None:
        # Walk the open promises from the latest promised time down, on the
        # callbacks_promised index, to the first that entered early enough.
        # New requests usually entered last, so the first row qualifies; a
        # MAX() filtered on entry_time would read every open row instead.
        entry = entry_time.timestamp()
        with self._lock:
            try:
                cursor = self._db.execute(
                    "SELECT promised_time, entry_time, callback_id FROM callbacks "
                    "INDEXED BY callbacks_promised WHERE queue = ? "
                    f"AND state IN {_OPEN_STATES_SQL} AND mode = ? "
                    "ORDER BY promised_time DESC",
                    (queue, CallbackMode.PREDICTED.value),
                )
                for promised, entered, callback_id in cursor:
                    if entered <= entry and callback_id != exclude_id:
                        return from_epoch(promised)
            except sqlite3.Error as error:
                raise StorageError(
                    f"store {self.path}: read failed: {error}"
                ) from error
        return None

    def count_open_before(
        self, queue: str, entry_time: datetime, exclude_id: str = ""
    ) -> int:
        # Counted on the partial index alone; the excluded promise is
        # subtracted after, because its id is not in the index.
        where = (
            f"WHERE queue = ? AND state IN {_OPEN_STATES_SQL} "
            f"AND mode IN {_PLACE_MODES_SQL} AND entry_time <= ?"
        )
        params = (queue, entry_time.timestamp())
        (count,) = self._query(
            f"SELECT COUNT(*) FROM callbacks INDEXED BY callbacks_place {where}",
            params,
        )[0]
        if exclude_id:
            count -= len(
                self._query(
                    f"SELECT 1 FROM callbacks {where} AND callback_id = ?",
                    (*params, exclude_id),
                )
            )
        return count

    def count_released(self, queue: str, start: datetime, end: datetime) -> int:
        (count,) = self._query(
            "SELECT COUNT(*) FROM attempts WHERE queue = ? AND issued_at >= ? "
            "AND issued_at < ? AND (outcome IS NULL OR outcome != ?)",
            (queue, start.timestamp(), end.timestamp(), Outcome.NOT_DIALED.value),
        )[0]
        return count

    def get_attempt(self, attempt_id: str) -> Attempt | None:
        rows = self._attempts(
            "SELECT row FROM attempts WHERE attempt_id = ?", (attempt_id,)
        )
        return rows[0] if rows else None

    def open_attempt(self, callback_id: str) -> Attempt | None:
        rows = self._attempts(
            "SELECT row FROM attempts WHERE callback_id = ? AND state != ?",
            (callback_id, AttemptState.FINAL.value),
        )
        return rows[0] if rows else None

    def attempts_of(self, callback_id: str) -> list[Attempt]:
        return self._attempts(
            "SELECT row FROM attempts WHERE callback_id = ? ORDER BY number",
            (callback_id,),
        )

    def expired_leases(self, now: datetime, limit: int) -> list[Attempt]:
        return self._attempts(
            "SELECT row FROM attempts WHERE state IN (?, ?) "
            "AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?",
            (
                AttemptState.ISSUED.value,
                AttemptState.DIALING.value,
                now.timestamp(),
                limit,
            ),
        )

    def read_events(self, after_seq: int, limit: int) -> list[Event]:
        rows = self._query(
            "SELECT seq, time, kind, callback_id, payload FROM events "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [_event(row) for row in rows]

    def iter_events(self) -> Iterator[Event]:
        after, batch = 0, 10_000
        while True:
            events = self.read_events(after, batch)
            yield from events
            if len(events) < batch:
                return
            after = events[-1].seq

    def get_setting(self, name: str) -> bytes | None:
        rows = self._query("SELECT value FROM settings WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    # Campaigns

    def _campaigns(self, sql: str, params: tuple = ()) -> list[Campaign]:
        return [
            Campaign.from_row(decode_payload(r[0])) for r in self._query(sql, params)
        ]

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        rows = self._campaigns(
            "SELECT row FROM campaigns WHERE campaign_id = ?", (campaign_id,)
        )
        return rows[0] if rows else None

    def campaign_for_request(self, request_id: str) -> Campaign | None:
        rows = self._campaigns(
            "SELECT row FROM campaigns WHERE request_id = ?", (request_id,)
        )
        return rows[0] if rows else None

    def list_campaigns(self, states: tuple[str, ...]) -> list[Campaign]:
        marks = ", ".join("?" * len(states))
        return self._campaigns(
            f"SELECT row FROM campaigns WHERE state IN ({marks}) ORDER BY campaign_id",
            tuple(states),
        )

    def page_campaigns(
        self, *, state: str | None, limit: int, after_id: str | None
    ) -> list[Campaign]:
        sql = "SELECT row FROM campaigns WHERE campaign_id > ?"
        params: list = [after_id or ""]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return self._campaigns(f"{sql} ORDER BY campaign_id LIMIT ?", (*params, limit))

    def campaign_targets(
        self,
        campaign_id: str,
        *,
        state: str | None = None,
        limit: int = 100,
        after_id: str | None = None,
    ) -> list[Callback]:
        # Target ids are "<campaign_id>-<number>", so the targets of one
        # campaign are the primary-key range from "<campaign_id>-" up to
        # "<campaign_id>." ("." follows "-" in ASCII).
        sql = (
            "SELECT row FROM callbacks WHERE campaign_id = ? AND callback_id > ? "
            "AND callback_id < ?"
        )
        params: list = [campaign_id, after_id or f"{campaign_id}-", f"{campaign_id}."]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return self._callbacks(f"{sql} ORDER BY callback_id LIMIT ?", (*params, limit))

    def due_targets(
        self, campaign_id: str, now: datetime, limit: int
    ) -> list[Callback]:
        return self._callbacks(
            # On callbacks_campaign in target order; retries not yet due are
            # passed over without a sort of every pending target.
            "SELECT row FROM callbacks INDEXED BY callbacks_campaign "
            "WHERE campaign_id = ? AND state = ? "
            "AND not_before <= ? ORDER BY callback_id LIMIT ?",
            (campaign_id, CallbackState.PENDING.value, now.timestamp(), limit),
        )

    def count_targets(self, campaign_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT state, COUNT(*) FROM callbacks WHERE campaign_id = ? "
            "GROUP BY state",
            (campaign_id,),
        )
        return dict(rows)

    def count_targets_in(self, campaign_id: str, states: tuple[str, ...]) -> int:
        marks = ", ".join("?" * len(states))
        (count,) = self._query(
            "SELECT COUNT(*) FROM callbacks INDEXED BY callbacks_campaign "
            f"WHERE campaign_id = ? AND state IN ({marks})",
            (campaign_id, *states),
        )[0]
        return count

    def dialing_target_customers(self) -> list[str]:
        rows = self._query(
            "SELECT customer_id FROM callbacks WHERE state = ? AND mode = ?",
            (CallbackState.DIALING.value, _CAMPAIGN),
        )
        return [row[0] for row in rows]

    def count_target_outcomes(self, campaign_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT attempts.outcome, COUNT(*) FROM attempts JOIN callbacks "
            "ON attempts.callback_id = callbacks.callback_id "
            "WHERE callbacks.campaign_id = ? AND attempts.outcome IS NOT NULL "
            "GROUP BY attempts.outcome",
            (campaign_id,),
        )
        return dict(rows)

    def open_targets_of(self, customer_id: str) -> list[Callback]:
        return self._callbacks(
            "SELECT row FROM callbacks WHERE customer_id = ? AND state IN (?, ?) "
            "AND mode = ? ORDER BY callback_id",
            (customer_id, *_OPEN_STATES, _CAMPAIGN),
        )

    def open_callbacks_of(self, customer_id: str) -> list[Callback]:
        return self._callbacks(
            "SELECT row FROM callbacks WHERE customer_id = ? AND state IN (?, ?) "
            "AND mode != ? ORDER BY callback_id",
            (customer_id, *_OPEN_STATES, _CAMPAIGN),
        )

    def last_reached(self, customer_id: str) -> datetime | None:
        rows = self._query(
            "SELECT reached_at FROM reached_agents WHERE customer_id = ?",
            (customer_id,),
        )
        return from_epoch(rows[0][0]) if rows else None

    def count_callbacks(self, state: str | None = None) -> int:
        if state is None:
            return self._query("SELECT COUNT(*) FROM callbacks")[0][0]
        return self._query("SELECT COUNT(*) FROM callbacks WHERE state = ?", (state,))[
            0
        ][0]

    # Recovery

    def rebuild_state(self) -> int:
        """Recreate the callbacks and attempts tables from the journal.

        Used when the current-state tables are lost or suspect: the journal
        is the record, the tables are derived from it. Campaigns are
        rebuilt from their events too.

        NOTE: ``reached_agents`` is not journaled, so a rebuild keeps the
        table as it is. If the table is lost too, a customer who reached an
        agent during a campaign may be called by it once more.
        """
        callbacks, attempts = rebuild_rows(self.iter_events())
        campaigns = rebuild_campaign_rows(self.iter_events())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM callbacks")
                self._db.execute("DELETE FROM attempts")
                self._db.execute("DELETE FROM campaigns")
                for row in callbacks.values():
                    self._write_callback(Callback.from_row(row), insert=True)
                for row in attempts.values():
                    self._write_attempt(Attempt.from_row(row), None)
                for row in campaigns.values():
                    self._write_campaign(Campaign.from_row(row), insert=True)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        logger.info(
            "store %s: rebuilt %d callbacks and %d attempts from the journal",
            self.path,
            len(callbacks),
            len(attempts),
        )
        return len(callbacks)

    def close(self) -> None:
        """Close the database and release the writer lock."""
        with self._lock:
            self._db.close()
            if self._writer_lock is not None:
                self._writer_lock.release()


def _event(row: tuple) -> Event:
    seq, when, kind, callback_id, payload = row
    return Event(seq, from_epoch(when), kind, callback_id, decode_payload(payload))
