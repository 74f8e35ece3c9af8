"""Features of a queued caller, day types and the rates fitted on history.

Every feature is computed from a ``Snapshot`` of the queue taken when the
caller joined, the caller's own priority and call type, and the local
clock, so nothing recorded after the caller queued enters a prediction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays
import numpy as np

from callsure.engine.calllog import CallRecord
from callsure.engine.exceptions import ValidationError
from callsure.engine.prediction import erlang
from callsure.engine.prediction.state import HIGH_PRIORITY, RECENT_S, Snapshot

CALL_TYPES = ("PS", "PE", "IN", "NE", "NW", "TT")
DAY_TYPES = ("workday", "friday", "saturday", "sunday", "holiday")
# Workdays by country (Monday is 0); Israel works Sunday to Thursday and
# half of Friday, so Friday gets a day type of its own.
WORKDAYS = {"IL": (6, 0, 1, 2, 3)}
DEFAULT_WORKDAYS = (0, 1, 2, 3, 4)

FEATURE_NAMES = (
    "ql_m",
    "ql_throughput",
    "ahead",
    "ahead_high",
    "waiting",
    "busy_agents",
    "active_agents",
    "idle_agents",
    "completions",
    "joins",
    "joins_high",
    "abandons",
    "last_wait_s",
    "recent_wait_s",
    "head_wait_s",
    "service_elapsed_s",
    "since_service_start_s",
    "priority_high",
    "hour",
    *(f"day_{name}" for name in DAY_TYPES),
    *(f"type_{name}" for name in CALL_TYPES),
)


@dataclass
class DayCalendar:
    """Day types of a country: workday, holiday or the weekday's name.

    Parameters
    ----------
    country : str
        ISO 3166 code understood by the ``holidays`` package (IL, KR, ...).
    zone : str
        IANA time zone in which days begin and end.
    """

    country: str = "IL"
    zone: str = "Asia/Jerusalem"
    _cache: dict[date, str] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.country not in holidays.list_supported_countries():
            raise ValidationError(
                "country", self.country, "use an ISO code the holidays package knows"
            )

    @cached_property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @cached_property
    def holidays(self) -> holidays.HolidayBase:
        return holidays.country_holidays(self.country)

    def local(self, moment: datetime) -> datetime:
        """Return ``moment`` in the calendar's time zone."""
        return moment.astimezone(self.tzinfo)

    def day_type(self, moment: datetime) -> str:
        """Return the day type of ``moment``'s local date."""
        day = self.local(moment).date()
        cached = self._cache.get(day)
        if cached is None:
            workdays = WORKDAYS.get(self.country, DEFAULT_WORKDAYS)
            if day in self.holidays:
                cached = "holiday"
            elif day.weekday() in workdays:
                cached = "workday"
            else:
                cached = day.strftime("%A").lower()
            self._cache[day] = cached
        return cached


@dataclass(frozen=True)
class Rates:
    """Handling and patience fitted on a history.

    Attributes
    ----------
    handle_s : float
        Mean handling time of all served calls.
    handle_s_by_type : dict[str, float]
        Mean handling time per call type with enough calls.
    patience_s : float
        Mean patience: the exponential maximum-likelihood estimate, total
        time in queue over abandons, where callers who were served count
        as censored (they would have waited at least that long).
    """

    handle_s: float
    handle_s_by_type: dict[str, float]
    patience_s: float

    @classmethod
    def fit(cls, records: Iterable[CallRecord]) -> Rates:
        """Estimate the rates from call-log records."""
        services: dict[str, list[float]] = {}
        exposure = 0.0
        abandons = 0
        for record in records:
            if record.served and record.service_s is not None:
                services.setdefault(record.type, []).append(record.service_s)
            if record.queued:
                exposure += record.wait_s
                abandons += not record.served
        everything = [s for values in services.values() for s in values]
        if not everything:
            raise ValidationError("records", 0, "fit on a history with served calls")
        by_type = {
            name: float(np.mean(values))
            for name, values in services.items()
            if len(values) >= 30
        }
        return cls(
            handle_s=float(np.mean(everything)),
            handle_s_by_type=by_type,
            patience_s=exposure / abandons if abandons else math.inf,
        )

    def as_dict(self) -> dict:
        return {
            "handle_s": self.handle_s,
            "handle_s_by_type": self.handle_s_by_type,
            "patience_s": self.patience_s,
        }


def strict_ql_m(snapshot: Snapshot, rates: Rates) -> float:
    """Return QL-m from the priority-aware position and recently active agents.

    This is the classic reference: agents seen active in the preceding
    window stand for the staffing, the rates come from the fitted history.
    """
    agents = max(snapshot.active_agents, 1)
    abandon_rate = 0.0 if math.isinf(rates.patience_s) else 1.0 / rates.patience_s
    return erlang.potential_wait_mean(
        agents, 1.0 / rates.handle_s, abandon_rate, snapshot.ahead
    )


def feature_vector(
    snapshot: Snapshot,
    *,
    priority: int,
    call_type: str,
    local_time: datetime,
    day_type: str,
    rates: Rates,
) -> np.ndarray:
    """Return the features of one caller, in the order of ``FEATURE_NAMES``."""
    throughput = (snapshot.ahead + 1) * RECENT_S / max(snapshot.completions, 1)
    values = [
        strict_ql_m(snapshot, rates),
        throughput,
        snapshot.ahead,
        snapshot.ahead_high,
        snapshot.waiting,
        snapshot.busy_agents,
        snapshot.active_agents,
        snapshot.active_agents - snapshot.busy_agents,
        snapshot.completions,
        snapshot.joins,
        snapshot.joins_high,
        snapshot.abandons,
        snapshot.last_wait_s,
        snapshot.recent_wait_s,
        snapshot.head_wait_s,
        snapshot.service_elapsed_s,
        snapshot.since_service_start_s,
        float(priority >= HIGH_PRIORITY),
        local_time.hour + local_time.minute / 60,
        *(float(day_type == name) for name in DAY_TYPES),
        *(float(call_type == name) for name in CALL_TYPES),
    ]
    return np.asarray(values, dtype=float)
