"""The learned wait model on the real call log, and its online predictor."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from callsure.engine.calllog import read_call_log
from callsure.engine.exceptions import ValidationError
from callsure.engine.prediction.evaluation import score
from callsure.engine.prediction.features import DayCalendar, feature_vector
from callsure.engine.prediction.learned import LearnedPredictor
from callsure.engine.prediction.model import QueuedCallers, WaitModel
from callsure.engine.prediction.state import (
    QueueState,
    cut_records,
    events_from_records,
)

# Each module fits the model on two weeks of the log once, about 15 s of CPU.
pytestmark = pytest.mark.slow

FIT = (date(1999, 2, 1), date(1999, 2, 14))
SCORE = (date(1999, 2, 15), date(1999, 2, 21))


@pytest.fixture(scope="module")
def bank_records(bank_log):
    return read_call_log(bank_log).records


@pytest.fixture(scope="module")
def callers(bank_records):
    return QueuedCallers.from_records(bank_records, DayCalendar("IL"))


@pytest.fixture(scope="module")
def model(callers):
    return WaitModel.fit(callers, callers.on_dates(*FIT))


@pytest.fixture(scope="module")
def scores(model, callers):
    return score(model, callers, callers.on_dates(*SCORE))


def test_features_use_nothing_after_queue_entry(bank_records, callers, model):
    # Recompute sampled callers' features from the log cut at their queue
    # entry; any use of later records would make them differ.
    rng = np.random.default_rng(1999)
    for index in rng.choice(len(callers.records), size=12, replace=False):
        record = callers.records[index]
        moment = record.q_start
        state = QueueState()
        for event in events_from_records(cut_records(bank_records, moment)):
            state.apply(event)
        snapshot = state.snapshot(moment.timestamp(), record.priority)
        assert snapshot == callers.snapshots[index], f"line {record.line}"
        recomputed = feature_vector(
            snapshot,
            priority=record.priority,
            call_type=record.type,
            local_time=callers.calendar.local(moment),
            day_type=callers.calendar.day_type(moment),
            rates=model.rates,
        )
        expected = callers.matrix(model.rates)[index]
        np.testing.assert_array_equal(recomputed, expected)


def test_cut_records_hides_later_steps(bank_records):
    moment = datetime(1999, 2, 10, 10, 0, tzinfo=UTC)
    for record in cut_records(bank_records, moment):
        for name in ("vru_entry", "q_start", "q_exit", "ser_start", "ser_exit"):
            value = getattr(record, name)
            assert value is None or value < moment


def test_rmse_beats_strict_ql_m(scores):
    assert scores["rmse_s"] <= 0.88 * scores["baseline"]["rmse_s"]


def test_rmse_beats_recalibrated_ql_m(scores):
    assert scores["rmse_s"] <= 0.95 * scores["recalibrated_baseline"]["rmse_s"]


def test_p90_coverage_overall(scores):
    assert 0.87 <= scores["coverage_p90"] <= 0.93


def test_p90_coverage_three_ahead(scores):
    assert scores["coverage_p90_3plus_ahead"] >= 0.83


def test_p90_sharper_than_scaled_ql_m(scores):
    assert scores["pinball_p90"] <= 0.9 * scores["baseline"]["pinball_p90"]


def test_model_round_trips_through_file(model, callers, tmp_path):
    path = model.save(tmp_path / "wait.npz")
    loaded = WaitModel.load(path)
    matrix = callers.matrix(model.rates)[:500]
    ahead = callers.ahead[:500]
    for key, values in model.predict(matrix, ahead).items():
        np.testing.assert_array_equal(loaded.predict(matrix, ahead)[key], values)


def test_load_rejects_other_file(tmp_path):
    path = tmp_path / "not-a-model.npz"
    path.write_bytes(b"no model here")
    with pytest.raises(ValidationError, match="callsure model fit"):
        WaitModel.load(path)


@pytest.fixture(scope="module")
def warm_predictor(model, bank_records, callers):
    """A predictor fed the log up to the first caller of 15 February who
    found three or more callers waiting."""
    day = [i for i, d in enumerate(callers.local_dates) if d == SCORE[0]]
    index = next(i for i in day if callers.snapshots[i].waiting >= 3)
    moment = callers.records[index].q_start
    predictor = LearnedPredictor(model, ["bank"])
    for event in events_from_records(bank_records):
        if event.time >= moment.timestamp():
            break
        predictor.observe("bank", event)
    return predictor, index, moment


def test_online_estimate_matches_batch(warm_predictor, model, callers):
    predictor, index, moment = warm_predictor
    record = callers.records[index]
    estimate = predictor.estimate_wait(
        "bank",
        callers.snapshots[index].ahead,
        moment,
        priority=record.priority,
        call_type=record.type,
    )
    batch = model.predict(
        callers.matrix(model.rates)[index : index + 1], callers.ahead[index : index + 1]
    )
    assert estimate.mean_s == pytest.approx(batch["mean"][0])
    assert estimate.quantiles_s[0.9] == pytest.approx(batch["0.9"][0])
    assert 0.0 < estimate.p_served < 1.0


def test_waiting_estimates_follow_queue_order(warm_predictor):
    predictor, _, moment = warm_predictor
    estimates = predictor.waiting_estimates("bank", moment)
    waiting = predictor.forecasts["bank"].state.waiting
    assert len(waiting) >= 3
    assert set(estimates) == set(waiting)
    positions = sorted(estimate.ahead for estimate in estimates.values())
    assert positions == list(range(len(waiting)))


def test_online_quantiles_ordered(warm_predictor):
    predictor, _, moment = warm_predictor
    estimate = predictor.estimate_wait("bank", 4, moment)
    values = [estimate.quantiles_s[p] for p in sorted(estimate.quantiles_s)]
    assert values == sorted(values)


def test_online_capacity_within_staffing(warm_predictor):
    predictor, _, moment = warm_predictor
    slots = predictor.capacity("bank", moment, moment + timedelta(hours=3))
    assert len(slots) == 12
    for slot in slots:
        assert slot.agents > 0
        assert slot.callbacks >= 0
        assert slot.callbacks <= slot.agents * 900 / 60


def test_online_keep_probability_closed_night(warm_predictor):
    predictor, _, moment = warm_predictor
    # 03:00 local on a workday: the bank is closed and nobody can call back.
    night = datetime(1999, 2, 16, 1, 0, tzinfo=UTC)
    assert predictor.keep_probability("bank", night, moment) == 0.0
    feasible = predictor.nearest_feasible("bank", night, moment, target=0.8)
    assert feasible is None or feasible > moment


def test_observe_rejects_events_out_of_order(warm_predictor, bank_records):
    predictor, _, _ = warm_predictor
    early = events_from_records(bank_records[:200])[0]
    with pytest.raises(ValidationError, match="time order"):
        predictor.observe("bank", early)


def test_from_settings_loads_model(model, tmp_path):
    from callsure.engine.config import load_config

    path = model.save(tmp_path / "wait.npz")
    config = load_config(None).replace(
        prediction={"model_file": str(path), "country": "KR", "zone": "Asia/Seoul"}
    )
    predictor = LearnedPredictor.from_settings(config.prediction, ["sales"])
    assert predictor.calendar.country == "KR"
    assert predictor.erlang.keep_window_s == config.prediction.keep_window_s


def test_from_settings_requires_model_file():
    from callsure.engine.config import load_config

    with pytest.raises(ValidationError, match="model_file"):
        LearnedPredictor.from_settings(load_config(None).prediction, ["sales"])
