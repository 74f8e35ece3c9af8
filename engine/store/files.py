"""Files of a SQLite store on disk: private modes and the writer lock.

A callback store contains customers' phone numbers, so its database file
and the files SQLite keeps beside it (``-wal``, ``-shm``, ``-journal``)
are readable by their owner only (mode 0600).

One process writes a store at a time. SQLite would let two processes
commit to the same file in turn, but the scheduler keeps policies,
calendars and capacity counts in memory, so it would not see the other
writer's changes. A store therefore takes an exclusive ``flock`` on
``<db>.lock`` for as long as it is open. The kernel drops the lock when
the holding process exits, even by SIGKILL, so a restart after a crash
finds it free. Stores opened more than once in the same process share
that process's lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import threading
from dataclasses import dataclass

from callsure.engine.exceptions import StorageError

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
SERVE_PID_ENV = "CALLSURE_SERVE_PID"
"""Environment variable with the process id of ``callsure serve``. Serve
sets it before it starts a local Ray, whose workers inherit it, so the lock
file of a store that a worker opens names the serve process as well."""

PRIVATE_MODE = 0o600
# Files SQLite creates beside the database, named by a suffix of its path.
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")


def create_private(path: str) -> None:
    """Create the database file at ``path`` with mode 0600, or narrow it.

    SQLite creates a missing database with mode 0644 less the umask. It
    creates the ``-wal``, ``-shm`` and ``-journal`` files with the mode of
    the database file, so a database created here with 0600 gets private
    side files as well. An existing database and its existing side files
    that others may read, written by an earlier release, are narrowed to
    0600.

    Raises
    ------
    OSError
        When the file cannot be created (a missing or read-only folder).
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        for name in (path, *(path + suffix for suffix in SIDE_FILE_SUFFIXES)):
            narrow_to_private(name)
        return
    # An empty file is a valid empty SQLite database.
    os.close(descriptor)


def narrow_to_private(path: str) -> None:
    """Narrow the mode of the file at ``path`` to at most 0600 (owner only).

    A missing path, or one that is not a regular file, is left alone. When
    the mode cannot be changed (another user owns the file), a warning is
    logged and the file stays as it is.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(status.st_mode)
    if not stat.S_ISREG(status.st_mode) or mode & ~PRIVATE_MODE == 0:
        return
    try:
        os.chmod(path, mode & PRIVATE_MODE)
    except OSError as error:
        # Only the owner may change a file's mode, and the caller can use
        # the file anyway.
        logger.warning(
            "file %s: cannot narrow mode %o to owner-only: %s",
            path,
            mode,
            error.strerror,
        )
        return
    logger.info("file %s: mode %o narrowed to %o", path, mode, mode & PRIVATE_MODE)


@dataclass
class _ProcessLock:
    descriptor: int
    users: int


# Locks taken by this process, by the real path of the lock file. flock
# conflicts between two descriptors of the same file even in one process,
# so a second store on the same database reuses the first one's lock.
_locks_in_process: dict[str, _ProcessLock] = {}
_locks_guard = threading.Lock()


class WriterLock:
    """An exclusive ``flock`` on ``<db>.lock``, held by one process at a time.

    The lock file contains the process id of the holder on its first line,
    so the error of a second process names it. When ``SERVE_PID_ENV`` names
    another process, a second line ``serve <pid>`` records that the holder
    is a worker of that ``callsure serve``, and the error names both.

    NOTE: a child forked without ``exec`` shares the lock's open file, so
    the lock lasts until that child exits as well.

    Parameters
    ----------
    db_path : str
        Path of the database file. The lock file is its real path (symbolic
        links resolved) plus ``.lock``, created with mode 0600, so two
        links to one database take the same lock.

    Raises
    ------
    StorageError
        When another process holds the lock, naming the database, the lock
        file and the holder's process id; or when the lock file cannot be
        created.
    """

    def __init__(self, db_path: str):
        self.db_path = db_path
        self.path = os.path.realpath(db_path) + LOCK_SUFFIX
        self._key = self.path
        self._released = False
        with _locks_guard:
            entry = _locks_in_process.get(self._key)
            if entry is not None:
                entry.users += 1
                return
            _locks_in_process[self._key] = _ProcessLock(self._acquire(), 1)

    def _acquire(self) -> int:
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        except OSError as error:
            raise StorageError(
                f"cannot create the lock file {self.path} of the store "
                f"{self.db_path}: {error.strerror}; check that the folder is "
                "writable"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise StorageError(
                f"the store {self.db_path} is in use by {holder} (lock file "
                f"{self.path}); stop that process, or give this one another "
                "storage path"
            ) from None
        except OSError as error:
            os.close(descriptor)
            raise StorageError(
                f"cannot lock {self.path} of the store {self.db_path}: "
                f"{error.strerror}; put the store on a local file system"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, _holder_text().encode(), 0)
        return descriptor

    def release(self) -> None:
        """Release this store's use of the lock; the last use unlocks it."""
        with _locks_guard:
            if self._released:
                return
            self._released = True
            entry = _locks_in_process.get(self._key)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0:
                return
            del _locks_in_process[self._key]
            # The file stays: removing it would let a process that opened
            # the old file and a process that creates a new one both lock.
            os.ftruncate(entry.descriptor, 0)
            os.close(entry.descriptor)


def _holder_text() -> str:
    """Return the lock file's text: this process id, then the serve line."""
    pid = str(os.getpid())
    serve_pid = os.environ.get(SERVE_PID_ENV, "").strip()
    if serve_pid.isdigit() and serve_pid != pid:
        return f"{pid}\nserve {serve_pid}\n"
    return f"{pid}\n"


def _read_holder(descriptor: int) -> str:
    lines = os.pread(descriptor, 64, 0).decode("ascii", "replace").splitlines()
    pid = lines[0].strip() if lines else ""
    if not pid.isdigit():
        # The holder locked the file but has not written its id yet.
        return "another process"
    serve_pid = lines[1].removeprefix("serve ").strip() if len(lines) > 1 else ""
    if serve_pid.isdigit():
        return f"process {pid} (a worker of callsure serve, process {serve_pid})"
    return f"process {pid}"
