"""ErlangAPredictor: the WaitPredictor protocol from Erlang A."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from callsure.engine.exceptions import NotFoundError, ValidationError
from callsure.engine.prediction import ErlangAPredictor, StaticForecast, erlang

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def bank_like(agents: float = 7, arrivals_per_min: float = 2.0) -> ErlangAPredictor:
    forecast = StaticForecast(
        arrivals_per_s=arrivals_per_min / 60,
        agents_on_duty=agents,
        mean_handle_s=180.0,
        mean_patience_s=345.0,
        priority_shares={0: 0.7, 2: 0.3},
    )
    return ErlangAPredictor({"sales": forecast})


def test_estimate_wait_matches_ql_m():
    predictor = bank_like()
    estimate = predictor.estimate_wait("sales", 3, NOW, priority=2)
    expected = erlang.potential_wait_mean(7, 1 / 180, 1 / 345, 3)
    assert estimate.mean_s == pytest.approx(expected)
    assert estimate.ahead == 3
    assert estimate.p_served == pytest.approx(erlang.p_served(7, 1 / 180, 1 / 345, 3))


def test_estimate_wait_quantiles_increase():
    estimate = bank_like().estimate_wait("sales", 2, NOW)
    values = [estimate.quantiles_s[p] for p in sorted(estimate.quantiles_s)]
    assert values == sorted(values)
    assert estimate.quantiles_s[0.9] > estimate.mean_s


def test_low_priority_waits_longer_than_high():
    predictor = bank_like()
    low = predictor.estimate_wait("sales", 3, NOW, priority=0)
    high = predictor.estimate_wait("sales", 3, NOW, priority=2)
    assert low.mean_s > high.mean_s


def test_closed_queue_never_serves():
    estimate = bank_like(agents=0).estimate_wait("sales", 0, NOW)
    assert estimate.mean_s == math.inf
    assert estimate.p_served == 0.0


def test_unknown_queue_raises_not_found():
    with pytest.raises(NotFoundError):
        bank_like().estimate_wait("support", 0, NOW)


def test_naive_time_rejected():
    with pytest.raises(ValidationError, match="timezone-aware"):
        bank_like().estimate_wait("sales", 0, datetime(2026, 3, 2, 9, 0))


def test_capacity_reserves_inbound_agents():
    predictor = bank_like(agents=10)
    slots = predictor.capacity("sales", NOW, NOW + timedelta(hours=1))
    assert len(slots) == 4
    needed = predictor.inbound_agents("sales", NOW)
    for slot in slots:
        assert slot.inbound_agents == needed
        assert slot.callbacks == math.floor((10 - needed) * 900 / 180)
    # The chosen staffing keeps the target and one agent fewer does not.
    keep = erlang.erlang_a_metrics(2 / 60, 1 / 180, 1 / 345, needed, 20).service_level
    short = erlang.erlang_a_metrics(
        2 / 60, 1 / 180, 1 / 345, needed - 1, 20
    ).service_level
    assert keep >= 0.8
    assert short < 0.8


def test_capacity_understaffed_has_no_callbacks():
    slots = bank_like(agents=4).capacity("sales", NOW, NOW + timedelta(minutes=30))
    assert [slot.callbacks for slot in slots] == [0, 0]


def test_capacity_rejects_reversed_range():
    with pytest.raises(ValidationError, match="end"):
        bank_like().capacity("sales", NOW, NOW - timedelta(minutes=1))


def test_keep_probability_grows_with_staff():
    when = NOW + timedelta(minutes=30)
    thin = bank_like(agents=6).keep_probability("sales", when, NOW)
    rich = bank_like(agents=10).keep_probability("sales", when, NOW)
    assert 0.0 < thin < rich <= 1.0


def test_keep_probability_past_time_is_zero():
    assert bank_like().keep_probability("sales", NOW - timedelta(1), NOW) == 0.0


class MorningRush(StaticForecast):
    """Overloaded until 10:00, then well staffed."""

    def arrival_rate(self, when, priority=None):
        return 8 / 60 if when.hour < 10 else 1 / 60


def test_nearest_feasible_waits_for_rush_to_end():
    forecast = MorningRush(
        arrivals_per_s=0, agents_on_duty=8, mean_handle_s=180, mean_patience_s=345
    )
    predictor = ErlangAPredictor({"sales": forecast})
    when = NOW + timedelta(minutes=10)
    assert predictor.keep_probability("sales", when, NOW) < 0.9
    feasible = predictor.nearest_feasible("sales", when, NOW, target=0.9)
    assert feasible == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_nearest_feasible_none_when_closed():
    predictor = bank_like(agents=0)
    assert predictor.nearest_feasible("sales", NOW, NOW) is None


def test_estimate_wait_counts_promises_ahead_as_committed():
    predictor = bank_like()
    # Priority 2: no caller overtakes, so the queue moves at the full nμ.
    inbound = predictor.estimate_wait("sales", 10, NOW, priority=2)
    promised = predictor.estimate_wait("sales", 10, NOW, priority=2, committed=6)
    assert promised.quantiles_s[0.9] > inbound.quantiles_s[0.9]
    assert promised.mean_s == pytest.approx(
        erlang.committed_wait_mean(7, 1 / 180, 1 / 345, 10, 6)
    )
    assert promised.p_served == pytest.approx(erlang.p_served(7, 1 / 180, 1 / 345, 4))


def test_estimate_wait_rejects_committed_beyond_ahead():
    with pytest.raises(ValidationError, match="committed"):
        bank_like().estimate_wait("sales", 2, NOW, committed=3)


class ShiftChange(StaticForecast):
    """Agents on duty change from ``agents_on_duty`` to ``later`` at ``at``."""

    def __init__(self, at: datetime, later: float, **values):
        super().__init__(**values)
        self.at = at
        self.later = later

    def agents(self, when: datetime) -> float:
        return self.agents_on_duty if when < self.at else self.later


def staffed(later: float) -> ErlangAPredictor:
    forecast = ShiftChange(
        NOW + timedelta(minutes=10),
        later,
        arrivals_per_s=0.0,
        agents_on_duty=2,
        mean_handle_s=180.0,
        mean_patience_s=345.0,
    )
    return ErlangAPredictor({"sales": forecast})


def test_long_wait_follows_the_forecast_agents():
    constant = staffed(2).estimate_wait("sales", 30, NOW, committed=30)
    more = staffed(8).estimate_wait("sales", 30, NOW, committed=30)
    fewer = staffed(1).estimate_wait("sales", 30, NOW, committed=30)
    assert more.quantiles_s[0.9] < constant.quantiles_s[0.9] < fewer.quantiles_s[0.9]
    # 31 services at 2 agents for 10 min (6.7 services), the rest at 8.
    services = 31
    expected = 600 + (services - 600 * 2 / 180) * 180 / 8
    assert more.mean_s == pytest.approx(expected, rel=1e-6)


def test_short_wait_ignores_a_later_shift_change():
    constant = staffed(2).estimate_wait("sales", 1, NOW)
    more = staffed(8).estimate_wait("sales", 1, NOW)
    assert more.quantiles_s == constant.quantiles_s
