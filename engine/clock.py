"""Clocks injected into the domain code, so tests and replays run in virtual time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current time. Times are timezone-aware UTC datetimes."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class VirtualClock:
    """A clock that moves only when told to.

    Parameters
    ----------
    start : datetime
        Initial time; must be timezone-aware.
    """

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError(f"start must be timezone-aware, got naive {start!r}")
        self._now = start.astimezone(UTC)
        self._origin = self._now

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return (self._now - self._origin).total_seconds()

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``, which must not be earlier than the current time."""
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError(
                f"virtual time cannot go back from {self._now.isoformat()} "
                f"to {when.isoformat()}"
            )
        self._now = when
