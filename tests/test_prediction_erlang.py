"""Erlang B, C and A and the potential wait against published test values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from callsure.engine.prediction import erlang

TOLERANCE = 1e-4
# 100 calls per 30 min and 3 min handling, in minutes.
ARRIVALS_PER_MIN = 100 / 30
SERVICE_PER_MIN = 1 / 3


@pytest.mark.parametrize(
    ("agents", "p_wait", "service_level"),
    [
        (11, 0.6821, 0.3896),
        (12, 0.4494, 0.6402),
        (13, 0.2853, 0.7956),
        (14, 0.1741, 0.8884),
        (15, 0.1020, 0.9415),
    ],
)
def test_erlang_c_sweep(agents, p_wait, service_level):
    result = erlang.erlang_c_metrics(ARRIVALS_PER_MIN, SERVICE_PER_MIN, agents, 20 / 60)
    assert result.p_wait == pytest.approx(p_wait, abs=TOLERANCE)
    assert result.service_level == pytest.approx(service_level, abs=TOLERANCE)


def test_erlang_c_mean_wait_14_agents():
    result = erlang.erlang_c_metrics(ARRIVALS_PER_MIN, SERVICE_PER_MIN, 14, 20 / 60)
    assert result.mean_wait * 60 == pytest.approx(7.84, abs=0.005)


def test_erlang_c_large_load():
    assert erlang.erlang_c(132, 123) == pytest.approx(0.3211161792617074, abs=1e-12)
    assert erlang.erlang_b(132, 123) == pytest.approx(0.031243, abs=TOLERANCE)


def test_erlang_c_overloaded_waits_always():
    assert erlang.erlang_c(10, 12.0) == 1.0
    assert erlang.erlang_c_metrics(12.0, 1.0, 10, 1.0).mean_wait == math.inf


def test_erlang_b_rejects_negative_agents():
    with pytest.raises(ValueError, match="agents"):
        erlang.erlang_b(-1, 3.0)


@pytest.mark.parametrize(
    ("agents", "p_wait", "p_abandon", "service_level"),
    [
        (12, 0.33180, 0.04271, 0.77228),
        (13, 0.22580, 0.02496, 0.85818),
        (14, 0.14526, 0.01398, 0.91679),
    ],
)
def test_erlang_a_bank_sizes(agents, p_wait, p_abandon, service_level):
    result = erlang.erlang_a_metrics(
        ARRIVALS_PER_MIN, SERVICE_PER_MIN, 1 / 5, agents, 20 / 60
    )
    assert result.p_wait == pytest.approx(p_wait, abs=TOLERANCE)
    assert result.p_abandon == pytest.approx(p_abandon, abs=TOLERANCE)
    assert result.service_level == pytest.approx(service_level, abs=TOLERANCE)


def test_erlang_a_mean_wait_13_agents():
    result = erlang.erlang_a_metrics(
        ARRIVALS_PER_MIN, SERVICE_PER_MIN, 1 / 5, 13, 20 / 60
    )
    assert result.mean_wait == pytest.approx(0.12482, abs=TOLERANCE)


def test_erlang_a_large_center():
    result = erlang.erlang_a_metrics(120.0, 1.0, 0.5, 100, 0.1)
    assert result.p_wait == pytest.approx(0.996634, abs=TOLERANCE)
    assert result.p_abandon == pytest.approx(0.166791, abs=TOLERANCE)
    assert result.mean_wait == pytest.approx(0.333581, abs=TOLERANCE)


def test_queue_length_distribution_sums_to_p_wait():
    queue = erlang.queue_length_distribution(ARRIVALS_PER_MIN, SERVICE_PER_MIN, 0.2, 13)
    assert queue.sum() == pytest.approx(0.22580, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("time", "survival"), [(0.15, 0.8823), (0.20, 0.4725), (0.25, 0.1295)]
)
def test_potential_wait_survival(time, survival):
    value = erlang.potential_wait_survival(100, 1.0, 0.5, 20, time)
    assert value == pytest.approx(survival, abs=TOLERANCE)


def test_potential_wait_quantile_and_service():
    assert erlang.potential_wait_quantile(100, 1.0, 0.5, 20, 0.9) == pytest.approx(
        0.25781, abs=TOLERANCE
    )
    assert erlang.p_served(100, 1.0, 0.5, 20) == pytest.approx(0.9050, abs=TOLERANCE)


def test_potential_wait_matches_sum_of_exponentials():
    # V = Σ Exp(nμ + iθ): the Beta form must agree with a direct sample.
    rng = np.random.default_rng(7)
    rates = 100 * 1.0 + np.arange(21) * 0.5
    samples = rng.exponential(1.0 / rates, size=(200_000, rates.size)).sum(axis=1)
    assert samples.mean() == pytest.approx(
        erlang.potential_wait_mean(100, 1.0, 0.5, 20), rel=0.01
    )
    assert np.mean(samples > 0.2) == pytest.approx(
        erlang.potential_wait_survival(100, 1.0, 0.5, 20, 0.2), abs=0.005
    )


def test_potential_wait_without_abandonment_is_gamma():
    quantile = erlang.potential_wait_quantile(5, 0.01, 0.0, 3, 0.9)
    assert quantile == pytest.approx(stats.gamma.ppf(0.9, 4, scale=1 / 0.05))
    assert erlang.potential_wait_mean(5, 0.01, 0.0, 3) == pytest.approx(4 / 0.05)


def test_potential_wait_quantile_rejects_probability_one():
    with pytest.raises(ValueError, match="probability"):
        erlang.potential_wait_quantile(5, 0.01, 0.001, 3, 1.0)


def test_committed_wait_without_promises_is_ql_m():
    assert erlang.committed_wait_mean(100, 1.0, 0.5, 20, 0) == pytest.approx(
        erlang.potential_wait_mean(100, 1.0, 0.5, 20)
    )
    assert erlang.committed_wait_quantile(100, 1.0, 0.5, 20, 0, 0.9) == pytest.approx(
        erlang.potential_wait_quantile(100, 1.0, 0.5, 20, 0.9)
    )


def test_committed_wait_matches_sum_of_exponentials():
    # 12 who may abandon, then 8 promises and the caller's own service.
    rng = np.random.default_rng(11)
    rates = np.concatenate([5 * 0.01 + np.arange(12, 0, -1) * 0.004, np.full(9, 0.05)])
    samples = rng.exponential(1.0 / rates, size=(200_000, rates.size)).sum(axis=1)
    assert samples.mean() == pytest.approx(
        erlang.committed_wait_mean(5, 0.01, 0.004, 20, 8), rel=0.01
    )
    for probability in (0.5, 0.9):
        assert np.quantile(samples, probability) == pytest.approx(
            erlang.committed_wait_quantile(5, 0.01, 0.004, 20, 8, probability),
            rel=0.01,
        )


def test_committed_wait_of_promises_only_is_gamma():
    quantile = erlang.committed_wait_quantile(5, 0.01, 0.004, 6, 6, 0.9)
    assert quantile == pytest.approx(stats.gamma.ppf(0.9, 7, scale=1 / 0.05), rel=2e-3)


def test_committed_wait_grows_with_promises():
    waits = [
        erlang.committed_wait_quantile(5, 0.01, 0.004, 20, committed, 0.9)
        for committed in (0, 5, 10, 20)
    ]
    assert waits == sorted(waits)
    assert waits[-1] > 1.5 * waits[0]


def test_committed_wait_rejects_more_promises_than_ahead():
    with pytest.raises(ValueError, match="committed"):
        erlang.committed_wait_mean(5, 0.01, 0.004, 3, 4)
