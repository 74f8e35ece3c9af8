"""Event kinds and time conversions shared by the simulation's modules."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

# The run stops this long after the last shift ends; what is still open
# then is counted as pending.
CLOSING_GRACE_S = 1800.0


class Kind(enum.IntEnum):
    """Kinds of timed events on the simulation's heap."""

    ARRIVE = 1
    ABANDON = 2
    SERVICE_END = 3
    SHIFT_START = 4
    SHIFT_END = 5
    POLL = 6
    DIAL_DONE = 7
    CALLBACK_GIVE_UP = 8
    TRACE = 9
    REDIAL = 10
    REOFFER = 11


def epoch(moment: datetime) -> float:
    """Return seconds since the epoch of an aware datetime."""
    return moment.timestamp()


def utc(seconds: float) -> datetime:
    """Return the UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(seconds, UTC)
