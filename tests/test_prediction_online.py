"""Online learners: day types, arrival profile with surges, running rates."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from callsure.engine.exceptions import ValidationError
from callsure.engine.prediction.features import DayCalendar, Rates
from callsure.engine.prediction.online import SLOT_S, ArrivalProfile, RunningRates
from callsure.engine.prediction.state import (
    AGENT_OFF,
    AGENT_ON,
    JOIN,
    LEAVE,
    SERVICE_END,
    SERVICE_START,
    QueueEvent,
    QueueState,
)


def noon(day: date, zone_hours: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, 12 - zone_hours, tzinfo=UTC)


def test_israel_day_types():
    calendar = DayCalendar("IL", "Asia/Jerusalem")
    assert calendar.day_type(noon(date(2026, 3, 1))) == "workday"  # Sunday
    assert calendar.day_type(noon(date(2026, 3, 6))) == "friday"
    assert calendar.day_type(noon(date(2026, 3, 7))) == "saturday"
    assert calendar.day_type(noon(date(2026, 4, 2), 3)) == "holiday"  # Pesach


def test_korea_day_types():
    calendar = DayCalendar("KR", "Asia/Seoul")
    assert calendar.day_type(noon(date(2026, 3, 10), 9)) == "workday"  # Tuesday
    assert calendar.day_type(noon(date(2026, 3, 8), 9)) == "sunday"
    assert calendar.day_type(noon(date(2026, 2, 17), 9)) == "holiday"  # Seollal


def test_local_midnight_starts_the_day():
    calendar = DayCalendar("IL", "Asia/Jerusalem")
    # 23:30 UTC on Thursday is already Friday in Israel.
    assert calendar.day_type(datetime(2026, 3, 5, 23, 30, tzinfo=UTC)) == "friday"


def test_unknown_country_rejected():
    with pytest.raises(ValidationError, match="country"):
        DayCalendar("XX", "UTC")


def feed_day(
    profile: ArrivalProfile, day: date, joins_per_slot: int, slots: int = 2
) -> datetime:
    """Feed ``joins_per_slot`` joins in each slot from 10:00 UTC of ``day``."""
    start = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    joins = joins_per_slot * slots
    for i in range(joins):
        profile.add(start + timedelta(seconds=i * slots * SLOT_S / joins))
    return start


def test_arrival_profile_learns_slot_rate():
    profile = ArrivalProfile(DayCalendar("KR", "UTC"))
    for offset in range(5):
        feed_day(profile, date(2026, 3, 2) + timedelta(days=offset), 30)
    profile.advance(datetime(2026, 3, 9, 9, tzinfo=UTC))
    when = datetime(2026, 3, 9, 10, 5, tzinfo=UTC)
    rate = profile.rate(when, when - timedelta(hours=2))
    assert rate == pytest.approx(30 / SLOT_S, rel=1e-9)


def test_arrival_profile_raises_forecast_in_surge():
    profile = ArrivalProfile(DayCalendar("KR", "UTC"))
    for offset in range(5):
        feed_day(profile, date(2026, 3, 2) + timedelta(days=offset), 30)
    # Monday 9 March: the 10:00 slot brings three times the usual joins.
    start = feed_day(profile, date(2026, 3, 9), 90, slots=1)
    now = start + timedelta(seconds=SLOT_S + 1)
    profile.advance(now)
    assert profile.surge_ratio() == pytest.approx(3.0)
    usual = profile.slot_means.get("workday", 41)
    assert usual == pytest.approx(30.0)
    soon = profile.rate(now, now)
    later = profile.rate(now + timedelta(hours=4), now)
    assert soon > 2.5 * usual / SLOT_S
    assert later < soon


def test_patience_treats_served_as_censored():
    rates = RunningRates(Rates(180.0, {}, 300.0), prior_weight=0.0)
    for _ in range(4):
        rates.add_wait(100.0, served=True)
    rates.add_wait(100.0, served=False)
    # Exponential MLE: 500 s of exposure over one abandon.
    assert rates.patience_s() == pytest.approx(500.0)


def test_handle_time_blends_prior_by_type():
    rates = RunningRates(Rates(180.0, {"NE": 250.0}, 300.0), prior_weight=10.0)
    for _ in range(10):
        rates.add_service("NE", 150.0)
    assert rates.handle_s("NE") == pytest.approx(200.0)
    assert rates.handle_s("PS") == pytest.approx(180.0)


def test_patience_infinite_without_abandons():
    rates = RunningRates(Rates(180.0, {}, math.inf), prior_weight=0.0)
    rates.add_wait(60.0, served=True)
    assert rates.patience_s() == math.inf


def test_agent_state_events_count_on_duty():
    state = QueueState()
    state.apply(QueueEvent(100.0, AGENT_ON, agent="DORIT"))
    state.apply(QueueEvent(100.0, AGENT_ON, agent="TOVA"))
    assert state.snapshot(5000.0).active_agents == 2
    state.apply(QueueEvent(5000.0, AGENT_OFF, agent="TOVA"))
    assert state.snapshot(5001.0).active_agents == 1


def test_signed_off_agent_stays_inactive():
    state = QueueState()
    state.apply(QueueEvent(100.0, AGENT_ON, agent="TOVA"))
    state.apply(QueueEvent(200.0, SERVICE_START, call_id=7, agent="TOVA"))
    state.apply(QueueEvent(300.0, AGENT_OFF, agent="TOVA"))
    state.apply(QueueEvent(400.0, SERVICE_END, call_id=7, agent="TOVA"))
    assert state.snapshot(401.0).active_agents == 0


def test_priority_caller_goes_ahead_of_regular():
    state = QueueState()
    state.apply(QueueEvent(0.0, JOIN, call_id=1, priority=0))
    state.apply(QueueEvent(30.0, JOIN, call_id=2, priority=0))
    # Credited 90 s, a high-priority caller joining at 60 s ranks before
    # both regular callers.
    assert state.snapshot(60.0, priority=2).ahead == 0
    assert state.snapshot(60.0, priority=0).ahead == 2
    state.apply(QueueEvent(70.0, LEAVE, call_id=1, served=True))
    assert state.snapshot(80.0).ahead == 1
    assert state.snapshot(80.0).last_wait_s == 70.0
