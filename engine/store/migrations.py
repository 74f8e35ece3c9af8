"""Schema migrations of the SQLite store.

The schema version is SQLite's ``user_version``. ``_SCHEMA`` in
``callsure.engine.store.sqlite`` creates the current schema in a new
database, and each entry of ``MIGRATIONS`` moves an existing database one
version up. Every step runs in one transaction together with the new
``user_version``, so a crash during a migration leaves the old version
whole and the next open runs it again. ``_SCHEMA`` runs on every open
before the migrations, so it must not refer to a column that a migration
adds.

Versions:

1. The first released schema.
2. ``requests.fingerprint``: the digest of the request fields, used to
   reject a request id replayed with another body. Version 1 kept it in
   ``settings`` under ``request_fingerprint:<request_id>``.
3. ``callbacks.campaign_id`` and its index, for the targets of outbound
   campaigns; the ``campaigns`` and ``reached_agents`` tables come from
   ``_SCHEMA``, which creates missing tables on every open.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

logger = logging.getLogger(__name__)

FINGERPRINT_SETTING_PREFIX = "request_fingerprint:"
"""Name prefix of the fingerprints that version 1 kept in ``settings``."""


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))


def add_request_fingerprints(db: sqlite3.Connection) -> int:
    """Move the request fingerprints from ``settings`` to ``requests``.

    Adds the ``fingerprint`` column when it is missing. Returns the number
    of fingerprints moved. A fingerprint of a request id that has no row
    in ``requests`` describes no stored request and is dropped.
    """
    if not _has_column(db, "requests", "fingerprint"):
        db.execute("ALTER TABLE requests ADD COLUMN fingerprint BLOB")
    # A lookup per request on the settings primary key; UPDATE ... FROM
    # would need SQLite 3.33.
    moved = db.execute(
        "UPDATE requests SET fingerprint = "
        "(SELECT value FROM settings WHERE name = ? || requests.request_id) "
        "WHERE EXISTS "
        "(SELECT 1 FROM settings WHERE name = ? || requests.request_id)",
        (FINGERPRINT_SETTING_PREFIX, FINGERPRINT_SETTING_PREFIX),
    ).rowcount
    # substr rather than LIKE, because "_" in the prefix is a LIKE wildcard.
    db.execute(
        "DELETE FROM settings WHERE substr(name, 1, ?) = ?",
        (len(FINGERPRINT_SETTING_PREFIX), FINGERPRINT_SETTING_PREFIX),
    )
    return moved


CAMPAIGN_INDEX = (
    "CREATE INDEX IF NOT EXISTS callbacks_campaign "
    "ON callbacks (campaign_id, state, callback_id) WHERE campaign_id IS NOT NULL"
)
"""Index of campaign targets; the store creates it after the migrations."""


def add_campaign_targets(db: sqlite3.Connection) -> int:
    """Add ``callbacks.campaign_id`` and its index.

    Returns 0: existing callbacks belong to no campaign, so no row changes.
    """
    if not _has_column(db, "callbacks", "campaign_id"):
        db.execute("ALTER TABLE callbacks ADD COLUMN campaign_id TEXT")
    db.execute(CAMPAIGN_INDEX)
    return 0


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], int]] = {
    1: add_request_fingerprints,
    2: add_campaign_targets,
}
"""The step that migrates a database from the version of its key to the next."""


def migrate(db: sqlite3.Connection, path: str, version: int, target: int) -> None:
    """Run the migrations from ``version`` up to ``target``, one transaction each.

    ``db`` is a connection in autocommit mode (``isolation_level=None``).
    """
    while version < target:
        step = MIGRATIONS[version]
        db.execute("BEGIN IMMEDIATE")
        try:
            changed = step(db)
            db.execute(f"PRAGMA user_version={version + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        logger.info(
            "store %s: migrated schema version %d to %d (%s, %d rows)",
            path,
            version,
            version + 1,
            step.__name__,
            changed,
        )
        version += 1
