"""Durable storage of callback promises: the interface, SQLite, the journal.

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
