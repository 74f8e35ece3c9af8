"""Callback calendars: periods, holidays, overrides and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from callsure.engine.exceptions import InvalidTimeError, ValidationError
from callsure.engine.policy import to_plain
from callsure.engine.windows import (
    CallbackCalendar,
    Period,
    calendar_from_plain,
    is_ambiguous,
    is_nonexistent,
    local_to_utc,
    zone_named,
)

BERLIN = zone_named("Europe/Berlin")
# Europe/Berlin in 2026: clocks go 02:00 -> 03:00 on 29 March and
# 03:00 -> 02:00 on 25 October.
SPRING_FORWARD = date(2026, 3, 29)
FALL_BACK = date(2026, 10, 25)


def berlin_calendar(**overrides) -> CallbackCalendar:
    day = (
        Period("morning", time(8), time(12)),
        Period("afternoon", time(13), time(18)),
    )
    values = {
        "time_zone": "Europe/Berlin",
        "weekly": {weekday: day for weekday in range(7)},
    }
    values.update(overrides)
    return CallbackCalendar(**values)


def test_nonexistent_local_time_rejected():
    naive = datetime(2026, 3, 29, 2, 30)
    assert is_nonexistent(naive, BERLIN)
    with pytest.raises(InvalidTimeError, match="does not exist") as caught:
        local_to_utc(naive, BERLIN)
    assert "2026-03-29T03:00:00" in str(caught.value)


def test_ambiguous_local_time_needs_fold():
    naive = datetime(2026, 10, 25, 2, 30)
    assert is_ambiguous(naive, BERLIN)
    with pytest.raises(InvalidTimeError, match="occurs twice"):
        local_to_utc(naive, BERLIN)
    first = local_to_utc(naive, BERLIN, fold=0)
    second = local_to_utc(naive, BERLIN, fold=1)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert second - first == timedelta(hours=1)


def test_ordinary_local_time_converts():
    assert local_to_utc(datetime(2026, 7, 1, 14, 0), BERLIN) == datetime(
        2026, 7, 1, 12, 0, tzinfo=UTC
    )


def test_period_in_spring_gap_opens_after_gap():
    calendar = berlin_calendar(
        overrides={SPRING_FORWARD: (Period("night", time(2), time(4)),)}
    )
    (window,) = calendar.windows_on(SPRING_FORWARD)
    assert window.start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)


def test_period_over_fall_back_covers_both_hours():
    calendar = berlin_calendar(
        overrides={FALL_BACK: (Period("night", time(2), time(3)),)}
    )
    (window,) = calendar.windows_on(FALL_BACK)
    assert window.start == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    assert window.end - window.start == timedelta(hours=2)


def test_day_windows_shift_with_offset():
    calendar = berlin_calendar()
    winter = calendar.window(date(2026, 3, 28), "morning")
    summer = calendar.window(date(2026, 3, 30), "morning")
    assert winter.start == datetime(2026, 3, 28, 7, 0, tzinfo=UTC)
    assert summer.start == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)


def test_holiday_closes_the_day():
    calendar = berlin_calendar(holiday_country="DE")
    christmas = date(2026, 12, 25)
    assert calendar.is_holiday(christmas)
    assert calendar.windows_on(christmas) == []
    assert calendar.windows_on(date(2026, 12, 23)) != []


def test_extra_holiday_closes_the_day():
    company_day = date(2026, 6, 12)
    calendar = berlin_calendar(extra_holidays=frozenset({company_day}))
    assert calendar.windows_on(company_day) == []


def test_override_opens_a_holiday():
    christmas = date(2026, 12, 25)
    calendar = berlin_calendar(
        holiday_country="DE",
        overrides={christmas: (Period("emergency", time(10), time(12)),)},
    )
    (window,) = calendar.windows_on(christmas)
    assert window.name == "emergency"


def test_next_open_skips_lunch_and_holiday():
    calendar = berlin_calendar(holiday_country="DE")
    lunch = datetime(2026, 12, 23, 11, 30, tzinfo=UTC)  # 12:30 local
    assert calendar.next_open(lunch) == datetime(2026, 12, 23, 12, 0, tzinfo=UTC)
    evening = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)  # 19:00 local
    # 25 and 26 December are public holidays in Germany.
    assert calendar.next_open(evening) == datetime(2026, 12, 27, 7, 0, tzinfo=UTC)


def test_next_open_inside_window_is_identity():
    calendar = berlin_calendar()
    inside = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert calendar.next_open(inside) == inside


def test_closed_calendar_never_opens():
    calendar = CallbackCalendar(time_zone="Europe/Berlin")
    assert calendar.next_open(datetime(2026, 7, 1, tzinfo=UTC)) is None


def test_unknown_period_names_open_ones():
    calendar = berlin_calendar()
    with pytest.raises(InvalidTimeError, match="morning, afternoon"):
        calendar.window(date(2026, 7, 1), "evening")


def test_midnight_end_means_end_of_day():
    calendar = CallbackCalendar.always_open()
    (window,) = calendar.windows_on(date(2026, 7, 1))
    assert window.end - window.start == timedelta(days=1)


def test_unknown_zone_rejected():
    with pytest.raises(ValidationError, match="IANA"):
        CallbackCalendar(time_zone="Mars/Olympus")


def test_unknown_holiday_country_rejected():
    with pytest.raises(ValidationError, match="holiday_country"):
        CallbackCalendar(holiday_country="XX")


def test_period_end_before_start_rejected():
    with pytest.raises(ValidationError, match="later than the start"):
        Period("bad", time(12), time(8))


def test_calendar_plain_round_trip():
    calendar = berlin_calendar(
        holiday_country="DE",
        extra_holidays=frozenset({date(2026, 6, 12)}),
        overrides={FALL_BACK: (Period("night", time(2), time(3)),)},
    )
    assert calendar_from_plain(to_plain(calendar)) == calendar


def test_windows_between_lists_overlapping():
    calendar = berlin_calendar()
    start = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    names = [w.name for w in calendar.windows_between(start, start + timedelta(days=1))]
    assert names == ["morning", "afternoon", "morning"]
