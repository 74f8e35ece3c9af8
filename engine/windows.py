"""Callback windows: when callbacks may be placed, in an explicit time zone.

A ``CallbackCalendar`` holds named periods per weekday (local wall-clock
times in an IANA zone), public holidays (from the ``holidays`` package
and explicit dates) on which it is closed, and per-date overrides that
replace a day's periods or close it. Times come in and go out as UTC.

Daylight-saving changes are handled deliberately:

* A local time that does not exist (the spring-forward gap, for example
  02:30 in Europe/Berlin on the last Sunday of March) is moved to the
  first instant after the gap when it bounds a period. So a period 02:00
  to 04:00 on that day opens at 03:00 local and lasts one real hour. A customer's
  local time in the gap is rejected with ``InvalidTimeError``.
* A local time that occurs twice (the fall-back hour) opens a period at
  its first occurrence and closes a period at its second, so a period
  01:00 to 02:00 on that day covers both real hours. A customer's
  ambiguous local time is rejected, naming both instants, unless the
  caller says which occurrence it means (``fold``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package

from callsure.engine.exceptions import InvalidTimeError, ValidationError

# How far ahead next_open() looks before it gives up: a calendar closed for
# longer than this is treated as closed for good.
SEARCH_HORIZON_DAYS = 366
# Local dates whose resolved windows a calendar keeps (a year's search fits).
WINDOW_CACHE_DATES = 1024


@dataclass(frozen=True)
class Period:
    """One named period of a day, in local wall-clock time; ``end`` exclusive.

    ``end`` of ``time(0)`` means midnight at the end of the day.
    """

    name: str
    start: time
    end: time

    def __post_init__(self):
        if self.end != time(0) and self.end <= self.start:
            raise ValidationError(
                "period",
                f"{self.name} {self.start}-{self.end}",
                "send an end later than the start (00:00 means end of day)",
            )


@dataclass(frozen=True)
class Window:
    """A period resolved to real time on one date: ``[start, end)`` in UTC."""

    name: str
    local_date: date
    start: datetime
    end: datetime

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when < self.end


def zone_named(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise a ``ValidationError``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "time_zone", name, "send an IANA zone name such as Europe/Berlin"
        ) from None


def _exists(local: datetime) -> bool:
    """Tell whether an aware local time survives a round trip through UTC."""
    back = local.astimezone(UTC).astimezone(local.tzinfo)
    return back.replace(tzinfo=None) == local.replace(tzinfo=None, fold=0)


def is_ambiguous(naive: datetime, zone: ZoneInfo) -> bool:
    """Tell whether a naive local time occurs twice in ``zone``."""
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and _exists(first)


def is_nonexistent(naive: datetime, zone: ZoneInfo) -> bool:
    """Tell whether a naive local time falls in a daylight-saving gap."""
    return not _exists(naive.replace(tzinfo=zone, fold=0))


def local_to_utc(
    naive: datetime, zone: ZoneInfo, *, fold: int | None = None
) -> datetime:
    """Convert a customer's local wall-clock time to UTC, strictly.

    Parameters
    ----------
    naive : datetime
        Local time without tzinfo.
    zone : ZoneInfo
    fold : int or None
        0 or 1 to choose the first or second occurrence of an ambiguous
        time; ``None`` rejects ambiguous times.

    Raises
    ------
    InvalidTimeError
        When the time does not exist in ``zone``, or is ambiguous and
        ``fold`` is ``None``.
    """
    if naive.tzinfo is not None:
        raise InvalidTimeError(
            "local_time", naive.isoformat(), "send a local time without an offset"
        )
    if is_nonexistent(naive, zone):
        after = _shift_past_gap(naive, zone)
        raise InvalidTimeError(
            "local_time",
            naive.isoformat(),
            f"it does not exist in {zone.key} (daylight-saving gap); send "
            f"{after.astimezone(zone).replace(tzinfo=None).isoformat()} instead",
        )
    if fold is None and is_ambiguous(naive, zone):
        first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        raise InvalidTimeError(
            "local_time",
            naive.isoformat(),
            f"it occurs twice in {zone.key}; send the UTC time "
            f"{first.isoformat()} or {second.isoformat()}, or choose a fold",
        )
    return naive.replace(tzinfo=zone, fold=fold or 0).astimezone(UTC)


def _shift_past_gap(naive: datetime, zone: ZoneInfo) -> datetime:
    """Return the first real instant after the gap that contains ``naive``."""
    # fold=0 applies the offset before the gap, which lands after the gap in
    # real time by exactly the gap's length; the earliest instant after the
    # gap is where the new offset starts, found by stepping back minute-wise.
    probe = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    earlier = probe
    while True:
        step = earlier - timedelta(minutes=1)
        if step.astimezone(zone).replace(tzinfo=None) < naive:
            return earlier
        earlier = step


def boundary_to_utc(
    local_date: date, at: time, zone: ZoneInfo, *, end: bool
) -> datetime:
    """Resolve a period boundary to UTC under the rules of the module docstring."""
    if end and at == time(0):
        local_date = local_date + timedelta(days=1)
    naive = datetime.combine(local_date, at)
    if is_nonexistent(naive, zone):
        return _shift_past_gap(naive, zone)
    fold = 1 if end and is_ambiguous(naive, zone) else 0
    return naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)


@dataclass(frozen=True)
class CallbackCalendar:
    """Opening periods for callbacks of one or more queues.

    Attributes
    ----------
    time_zone : str
        IANA zone of every local time here, for example ``Europe/Berlin``.
    weekly : dict[int, tuple[Period, ...]]
        Periods per weekday, Monday 0 to Sunday 6; a missing day is closed.
    holiday_country : str or None
        ISO country code for the ``holidays`` package; ``None`` for none.
    holiday_subdivision : str or None
    extra_holidays : frozenset of date
        Further closed dates (company holidays).
    overrides : dict[date, tuple[Period, ...]]
        Periods of one date replacing the weekday's; an empty tuple closes
        the date. Overrides win over holidays.
    """

    time_zone: str = "UTC"
    weekly: dict[int, tuple[Period, ...]] = field(default_factory=dict)
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    overrides: dict[date, tuple[Period, ...]] = field(default_factory=dict)

    def __post_init__(self):
        zone_named(self.time_zone)
        # Windows resolved per local date, because every create and release
        # looks up today's and resolving a boundary checks for DST changes.
        object.__setattr__(self, "_windows", {})
        for weekday in self.weekly:
            if weekday not in range(7):
                raise ValidationError(
                    "weekly", weekday, "send weekdays 0 (Monday) to 6 (Sunday)"
                )
        if self.holiday_country is not None:
            try:
                holidays_package.country_holidays(
                    self.holiday_country, subdiv=self.holiday_subdivision
                )
            except NotImplementedError:
                raise ValidationError(
                    "holiday_country",
                    self.holiday_country,
                    "send an ISO 3166 country code the holidays package knows",
                ) from None

    @classmethod
    def always_open(cls) -> CallbackCalendar:
        """Return a calendar open every day, all day, in UTC."""
        day = (Period("day", time(0), time(0)),)
        return cls(weekly={weekday: day for weekday in range(7)})

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_holiday(self, local_date: date) -> bool:
        if local_date in self.extra_holidays:
            return True
        if self.holiday_country is None:
            return False
        return local_date in _country_holidays(
            self.holiday_country, self.holiday_subdivision, local_date.year
        )

    def periods_on(self, local_date: date) -> tuple[Period, ...]:
        """Periods open on a local date, after holidays and overrides."""
        if local_date in self.overrides:
            return self.overrides[local_date]
        if self.is_holiday(local_date):
            return ()
        return self.weekly.get(local_date.weekday(), ())

    def windows_on(self, local_date: date) -> list[Window]:
        """Periods of a local date resolved to UTC windows, in order."""
        cached = self._windows.get(local_date)
        if cached is None:
            zone = self.zone
            windows = []
            for period in self.periods_on(local_date):
                start = boundary_to_utc(local_date, period.start, zone, end=False)
                end = boundary_to_utc(local_date, period.end, zone, end=True)
                if end > start:
                    windows.append(Window(period.name, local_date, start, end))
            cached = tuple(windows)
            if len(self._windows) >= WINDOW_CACHE_DATES:
                self._windows.clear()
            self._windows[local_date] = cached
        return list(cached)

    def window(self, local_date: date, period_name: str) -> Window:
        """Return the window of a named period on a date.

        Raises
        ------
        InvalidTimeError
            When the date has no open period of that name.
        """
        for window in self.windows_on(local_date):
            if window.name == period_name:
                return window
        names = ", ".join(w.name for w in self.windows_on(local_date)) or "none"
        raise InvalidTimeError(
            "window_period",
            f"{local_date.isoformat()} {period_name}",
            f"send a period open on that date (open periods: {names})",
        )

    def is_open(self, when: datetime) -> bool:
        return self.window_at(when) is not None

    def window_at(self, when: datetime) -> Window | None:
        """Find the window containing ``when`` (UTC); ``None`` when closed."""
        local_date = when.astimezone(self.zone).date()
        # A window of the previous local date can reach past midnight.
        for day in (local_date - timedelta(days=1), local_date):
            for window in self.windows_on(day):
                if when in window:
                    return window
        return None

    def next_open(self, when: datetime) -> datetime | None:
        """Find the first instant at or after ``when`` inside a window.

        Returns ``None`` when the calendar stays closed for
        ``SEARCH_HORIZON_DAYS``.
        """
        if self.window_at(when) is not None:
            return when
        local_date = when.astimezone(self.zone).date()
        for offset in range(SEARCH_HORIZON_DAYS + 1):
            for window in self.windows_on(local_date + timedelta(days=offset)):
                if window.start >= when:
                    return window.start
        return None

    def windows_between(self, start: datetime, end: datetime) -> Iterable[Window]:
        """Windows that overlap ``[start, end)``, in order."""
        local_date = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while local_date <= last:
            for window in self.windows_on(local_date):
                if window.end > start and window.start < end:
                    yield window
            local_date += timedelta(days=1)


_HOLIDAY_CACHE: dict[tuple[str, str | None, int], holidays_package.HolidayBase] = {}


def _country_holidays(country: str, subdivision: str | None, year: int):
    key = (country, subdivision, year)
    if key not in _HOLIDAY_CACHE:
        _HOLIDAY_CACHE[key] = holidays_package.country_holidays(
            country, subdiv=subdivision, years=year
        )
    return _HOLIDAY_CACHE[key]


def calendar_from_plain(plain: dict) -> CallbackCalendar:
    """Rebuild a calendar from ``policy.to_plain(calendar)``."""

    def periods(items) -> tuple[Period, ...]:
        return tuple(
            Period(
                p["name"], time.fromisoformat(p["start"]), time.fromisoformat(p["end"])
            )
            for p in items
        )

    return CallbackCalendar(
        time_zone=plain["time_zone"],
        weekly={int(day): periods(items) for day, items in plain["weekly"].items()},
        holiday_country=plain["holiday_country"],
        holiday_subdivision=plain["holiday_subdivision"],
        extra_holidays=frozenset(
            date.fromisoformat(d) for d in plain["extra_holidays"]
        ),
        overrides={
            date.fromisoformat(day): periods(items)
            for day, items in plain["overrides"].items()
        },
    )
