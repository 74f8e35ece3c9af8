"""Durable storage of callback promises: the interface, SQLite, the journal.

``files`` keeps the database private (mode 0600) and takes the lock that
lets one process at a time write it, and ``migrations`` moves the files of
earlier releases to the current schema.

``open_store(path)`` returns the default backend (SQLite). Other backends
implement ``CallbackStore``; see ``callsure.engine.store.interface`` for
the concurrency contract a PostgreSQL backend must keep.
"""

from callsure.engine.store.interface import CallbackStore, Change
from callsure.engine.store.sqlite import SQLiteStore


def open_store(path, **options) -> CallbackStore:
    """Open the SQLite store at ``path`` (created when missing)."""
    return SQLiteStore(path, **options)


__all__ = ["CallbackStore", "Change", "SQLiteStore", "open_store"]
