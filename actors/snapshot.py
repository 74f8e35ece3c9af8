"""Debounced, atomic snapshots of an actor's state to a msgpack file.

An actor whose engine class converts to built-in values (``to_state``)
calls ``changed()`` after each change. The file is then rewritten at most
every ``interval_s`` seconds (write to a temporary file, fsync, rename),
and at once by ``save_now()`` before a clean stop. A crash loses at most
the changes of the last interval.

Snapshots of customer shards contain customer ids, which are the calling
numbers of callers the IVR identified, so every snapshot file is written
with mode 0600 (owner only), like the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import msgpack

from callsure.engine.store.files import PRIVATE_MODE, narrow_to_private

logger = logging.getLogger(__name__)


class SnapshotFile:
    """The snapshot file of one actor."""

    def __init__(self, path: str | Path, dump: Callable[[], dict], interval_s: float):
        self.path = Path(path)
        self._dump = dump
        self._interval_s = interval_s
        self._dirty = False
        self._saver: asyncio.Task | None = None

    def load(self) -> dict | None:
        """Return the stored state, or ``None`` when there is no file yet."""
        if not self.path.exists():
            return None
        # A snapshot written by an earlier release may be readable by all.
        narrow_to_private(str(self.path))
        return msgpack.unpackb(self.path.read_bytes(), strict_map_key=False)

    def changed(self) -> None:
        """Schedule a save; call from the actor's event loop."""
        self._dirty = True
        if self._saver is None or self._saver.done():
            self._saver = asyncio.get_running_loop().create_task(self._save_later())

    async def save_now(self) -> None:
        self._dirty = False
        await asyncio.to_thread(self._write, self._dump())

    async def _save_later(self) -> None:
        await asyncio.sleep(self._interval_s)
        if not self._dirty:
            return
        self._dirty = False
        try:
            await asyncio.to_thread(self._write, self._dump())
        except Exception:  # noqa: BLE001 - the next change retries the save
            self._dirty = True
            logger.exception("snapshot %s: save failed", self.path)

    def _write(self, state: dict) -> None:
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        descriptor = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE
        )
        # A temporary file left by a crash keeps its mode through O_CREAT.
        os.fchmod(descriptor, PRIVATE_MODE)
        with os.fdopen(descriptor, "wb") as file:
            file.write(msgpack.packb(state))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
