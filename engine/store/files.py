"""Files of a SQLite store on disk: private modes.

A callback store contains customers' phone numbers, so its database file
and the files SQLite keeps beside it (``-wal``, ``-shm``, ``-journal``)
are readable by their owner only (mode 0600).
"""

from __future__ import annotations

import logging
import os
import stat

logger = logging.getLogger(__name__)

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
            _narrow(name)
        return
    # An empty file is a valid empty SQLite database.
    os.close(descriptor)


def _narrow(path: str) -> None:
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
        # Only the owner may change a file's mode, and SQLite opens the
        # file anyway.
        logger.warning(
            "store file %s: cannot narrow mode %o to owner-only: %s",
            path,
            mode,
            error.strerror,
        )
        return
    logger.info(
        "store file %s: mode %o narrowed to %o", path, mode, mode & PRIVATE_MODE
    )
