"""Learners updated one event at a time: arrivals, staffing, handling, patience.

None of them refits from scratch: each event changes a few running sums.

- ``ArrivalProfile``: requests for an agent (queue joins and calls
  answered without queueing) per interval of the day by day type, as
  an exponentially weighted mean over past days, and the surge ratio of
  the last interval's joins to that mean, so a surge is seen while it
  starts rather than the next day.
- ``StaffingProfile``: agents on duty per interval by day type, the same
  way, from the agents seen in the queue state.
- ``RunningRates``: mean handling time per call type and the patience
  estimate, total queue time over abandons with served callers censored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from callsure.engine.prediction.features import DayCalendar, Rates

SLOT_S = 900.0
# Weight of the newest day in the per-slot means: about a fortnight of memory.
DAY_WEIGHT = 0.15
# Joins in the last slot above this multiple of the profile mark a surge.
SURGE_RATIO = 1.5
# A surge's excess decays with this time constant over the forecast horizon.
SURGE_DECAY_S = 3600.0


def _slot(moment: datetime, calendar: DayCalendar) -> int:
    local = calendar.local(moment)
    return int((local.hour * 3600 + local.minute * 60 + local.second) // SLOT_S)


@dataclass
class _SlotMeans:
    """Exponentially weighted per-(day type, slot) means, folded in per slot."""

    calendar: DayCalendar
    means: dict[tuple[str, int], float] = field(default_factory=dict)

    def fold(self, day_type: str, slot: int, value: float) -> None:
        key = (day_type, slot)
        previous = self.means.get(key)
        self.means[key] = (
            value
            if previous is None
            else (1 - DAY_WEIGHT) * previous + DAY_WEIGHT * value
        )

    def get(self, day_type: str, slot: int) -> float | None:
        value = self.means.get((day_type, slot))
        if value is None and day_type != "workday":
            # A day type not seen yet (a first holiday) borrows the
            # nearest common pattern rather than predicting nothing.
            value = self.means.get(("workday", slot))
        return value


@dataclass
class ArrivalProfile:
    """Requests for an agent per ``SLOT_S`` interval, by day type, learned online."""

    calendar: DayCalendar
    slot_means: _SlotMeans | None = None
    current_start: datetime | None = None
    count: int = 0
    last_count: int = 0
    last_expected: float = 0.0

    def __post_init__(self):
        if self.slot_means is None:
            self.slot_means = _SlotMeans(self.calendar)

    def _slot_start(self, moment: datetime) -> datetime:
        local = self.calendar.local(moment)
        into_slot_s = (local.minute * 60 + local.second) % SLOT_S
        start = local.replace(microsecond=0) - timedelta(seconds=into_slot_s)
        return start.astimezone(UTC)

    def advance(self, moment: datetime) -> None:
        """Close every slot that ended before ``moment``, folding in its count.

        Slots without a join (closed hours included) fold in zero.
        """
        start = self._slot_start(moment)
        if self.current_start is None:
            self.current_start = start
        step = timedelta(seconds=SLOT_S)
        while self.current_start < start:
            day_type = self.calendar.day_type(self.current_start)
            slot = _slot(self.current_start, self.calendar)
            self.last_expected = self.slot_means.get(day_type, slot) or 0.0
            self.last_count = self.count
            self.slot_means.fold(day_type, slot, self.count)
            self.count = 0
            self.current_start += step

    def add(self, moment: datetime) -> None:
        """Count one request for an agent at ``moment``."""
        self.advance(moment)
        self.count += 1

    def surge_ratio(self) -> float:
        """Return last slot's joins over the profile's expectation (1 = normal)."""
        if self.last_expected <= 0:
            return 1.0
        return self.last_count / self.last_expected

    def rate(self, when: datetime, now: datetime) -> float:
        """Return joins per second expected at ``when``, seen from ``now``.

        A surge under way (ratio above ``SURGE_RATIO``) raises the profile
        by its excess, decaying with ``SURGE_DECAY_S`` of lead time.
        """
        expected = self.slot_means.get(
            self.calendar.day_type(when), _slot(when, self.calendar)
        )
        if expected is None:
            return 0.0
        ratio = self.surge_ratio()
        if ratio > SURGE_RATIO:
            lead_s = max(0.0, (when - now).total_seconds())
            expected *= 1.0 + (ratio - 1.0) * math.exp(-lead_s / SURGE_DECAY_S)
        return expected / SLOT_S


@dataclass
class StaffingProfile:
    """Agents on duty per ``SLOT_S`` interval, by day type, learned online."""

    calendar: DayCalendar
    slot_means: _SlotMeans | None = None
    samples: dict[tuple[datetime, str, int], list[int]] = field(default_factory=dict)

    def __post_init__(self):
        if self.slot_means is None:
            self.slot_means = _SlotMeans(self.calendar)

    def observe(self, moment: datetime, agents: int) -> None:
        """Record ``agents`` on duty at ``moment``; fold in finished slots."""
        local = self.calendar.local(moment)
        key = (
            local.date(),
            self.calendar.day_type(moment),
            _slot(moment, self.calendar),
        )
        for other in [k for k in self.samples if k != key and k < key]:
            values = self.samples.pop(other)
            self.slot_means.fold(other[1], other[2], sum(values) / len(values))
        self.samples.setdefault(key, []).append(agents)

    def agents(self, when: datetime) -> float:
        """Return agents expected on duty at ``when`` (0 outside known hours)."""
        value = self.slot_means.get(
            self.calendar.day_type(when), _slot(when, self.calendar)
        )
        return value or 0.0


@dataclass
class RunningRates:
    """Handling time per call type and patience, as running sums.

    Starts from ``prior`` counted as ``prior_weight`` calls, so the first
    live events refine the fitted values instead of replacing them.
    """

    prior: Rates
    prior_weight: float = 200.0
    handle_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    handle_count: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    exposure_s: float = 0.0
    abandons: float = 0.0

    def add_service(self, call_type: str, seconds: float) -> None:
        self.handle_sum[call_type] += seconds
        self.handle_count[call_type] += 1

    def add_wait(self, seconds: float, served: bool) -> None:
        self.exposure_s += seconds
        self.abandons += not served

    def handle_s(self, call_type: str | None = None) -> float:
        """Return the mean handling time of ``call_type`` (None: all types)."""
        if call_type is None:
            total = sum(self.handle_sum.values())
            count = sum(self.handle_count.values())
            prior = self.prior.handle_s
        else:
            total = self.handle_sum.get(call_type, 0.0)
            count = self.handle_count.get(call_type, 0.0)
            prior = self.prior.handle_s_by_type.get(call_type, self.prior.handle_s)
        return (prior * self.prior_weight + total) / (self.prior_weight + count)

    def patience_s(self) -> float:
        """Return mean patience: queue time over abandons, prior included."""
        # The prior counts as prior_weight callers of whom a fifth abandoned,
        # about the share in a loaded center.
        prior_abandons = self.prior_weight / 5
        if prior_abandons == 0 or math.isinf(self.prior.patience_s):
            return math.inf if self.abandons == 0 else self.exposure_s / self.abandons
        prior_exposure = prior_abandons * self.prior.patience_s
        return (prior_exposure + self.exposure_s) / (prior_abandons + self.abandons)
