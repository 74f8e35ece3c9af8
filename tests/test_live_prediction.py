"""The live predictor and the contact feed, without Ray: events in, waits out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from serve_support import fit_first_days

from callsure.actors.contact_feed import ContactFeed
from callsure.actors.predictors import (
    DEFAULT_FORECAST,
    LivePredictor,
    build_predictor,
    load_model,
)
from callsure.engine.agents import AgentState
from callsure.engine.config import load_config
from callsure.engine.customers import ContactKind
from callsure.engine.exceptions import ConfigError
from callsure.engine.prediction.features import DayCalendar
from callsure.engine.prediction.learned import LearnedPredictor
from callsure.engine.prediction.state import JOIN, LEAVE, SERVICE_END, SERVICE_START

# A Sunday, a workday in Israel, at noon local time.
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
T0 = NOW.timestamp() - 600
QUEUE = "billing"


class Center:
    """A predictor and the feed that translates contact events for it."""

    def __init__(self, predictor: LivePredictor):
        self.predictor = predictor
        self.feed = ContactFeed()

    def contact(self, contact_id, kind, offset_s, **fields):
        pairs = self.feed.contact_events(contact_id, kind, T0 + offset_s, **fields)
        for queue, event in pairs:
            self.predictor.observe(queue, event)
        return pairs

    def agent(self, agent_id, state, offset_s=0.0):
        event = self.feed.agent_event(agent_id, state, T0 + offset_s)
        self.predictor.observe(QUEUE, event)

    def new_caller(self, priority=0):
        ahead = self.predictor.ahead(QUEUE, NOW, priority)
        return self.predictor.estimate_wait(QUEUE, ahead, NOW, priority=priority)


def erlang_center(agents=3, queued=0) -> Center:
    center = Center(build_predictor(load_config(None)))
    for index in range(agents):
        center.agent(f"agent-{index}", AgentState.READY)
    for index in range(queued):
        center.contact(f"c-{index}", ContactKind.QUEUED, 10 + index, queue=QUEUE)
    return center


# The contact feed


def test_feed_answered_after_queue_leaves_then_serves():
    feed = ContactFeed()
    feed.contact_events("c-1", ContactKind.QUEUED, 1.0, queue=QUEUE, priority=10)
    pairs = feed.contact_events("c-1", ContactKind.ANSWERED, 5.0, agent="ann")
    kinds = [event.kind for _, event in pairs]
    assert kinds == [LEAVE, SERVICE_START]
    assert pairs[0][1].served
    assert {queue for queue, _ in pairs} == {QUEUE}
    assert pairs[1][1].agent == "ann"


def test_feed_answered_without_queue_starts_service():
    feed = ContactFeed()
    feed.contact_events("c-1", ContactKind.ARRIVED, 1.0, queue=QUEUE)
    pairs = feed.contact_events("c-1", ContactKind.ANSWERED, 2.0, agent="ann")
    assert [event.kind for _, event in pairs] == [SERVICE_START]


def test_feed_ended_in_service_ends_service():
    feed = ContactFeed()
    feed.contact_events("c-1", ContactKind.QUEUED, 1.0, queue=QUEUE)
    feed.contact_events("c-1", ContactKind.ANSWERED, 2.0, agent="ann")
    pairs = feed.contact_events("c-1", ContactKind.ENDED, 9.0)
    assert [event.kind for _, event in pairs] == [SERVICE_END]
    assert pairs[0][1].agent == "ann"
    assert len(feed) == 0


def test_feed_abandon_leaves_unserved():
    feed = ContactFeed()
    join = feed.contact_events("c-1", ContactKind.QUEUED, 1.0, queue=QUEUE)
    pairs = feed.contact_events("c-1", ContactKind.ABANDONED, 4.0)
    assert join[0][1].kind == JOIN
    assert [event.kind for _, event in pairs] == [LEAVE]
    assert not pairs[0][1].served


def test_feed_transfer_leaves_first_queue():
    feed = ContactFeed()
    feed.contact_events("c-1", ContactKind.QUEUED, 1.0, queue="sales")
    pairs = feed.contact_events("c-1", ContactKind.QUEUED, 3.0, queue=QUEUE)
    assert [(queue, event.kind) for queue, event in pairs] == [
        ("sales", LEAVE),
        (QUEUE, JOIN),
    ]


def test_feed_repeated_queued_ignored():
    feed = ContactFeed()
    feed.contact_events("c-1", ContactKind.QUEUED, 1.0, queue=QUEUE)
    assert feed.contact_events("c-1", ContactKind.QUEUED, 2.0, queue=QUEUE) == []


def test_feed_unknown_contact_end_ignored():
    assert ContactFeed().contact_events("c-9", ContactKind.ENDED, 1.0) == []


# Erlang A over the online learners (no model file)


def test_unreported_queue_uses_prior():
    predictor = build_predictor(load_config(None))
    forecast = predictor.queue(QUEUE).forecast
    assert forecast.agents(NOW) == DEFAULT_FORECAST.agents_on_duty
    assert forecast.arrival_rate(NOW) == DEFAULT_FORECAST.arrivals_per_s


def test_queued_callers_counted_ahead():
    center = erlang_center(queued=4)
    assert center.new_caller().ahead == 4


def test_more_callers_ahead_longer_wait():
    short = erlang_center(queued=1).new_caller()
    long = erlang_center(queued=6).new_caller()
    assert long.mean_s > short.mean_s
    assert long.quantiles_s[0.9] > short.quantiles_s[0.9]


def test_fewer_agents_longer_wait():
    center = erlang_center(agents=4, queued=3)
    before = center.new_caller()
    center.agent("agent-0", AgentState.LOGGED_OUT, 30)
    after = center.new_caller()
    assert after.mean_s > before.mean_s
    assert after.quantiles_s[0.5] > before.quantiles_s[0.5]


def test_answered_and_abandoned_leave_queue():
    center = erlang_center(queued=4)
    center.contact("c-0", ContactKind.ANSWERED, 40, agent="agent-0")
    center.contact("c-1", ContactKind.ABANDONED, 41)
    assert center.new_caller().ahead == 2


def test_no_agent_on_duty_bounded():
    center = erlang_center(agents=1, queued=2)
    center.agent("agent-0", AgentState.LOGGED_OUT, 30)
    estimate = center.new_caller()
    assert estimate.mean_s == center.predictor.horizon_s
    assert estimate.p_served == 0.0


def test_late_event_applied_in_order():
    center = erlang_center(queued=2)
    # An agent desktop reporting with a slow clock: older than the last event.
    center.agent("agent-late", AgentState.READY, -300)
    assert center.predictor.queue(QUEUE).forecast.learned.state.time == T0 + 11


def test_snapshot_round_trip_same_estimate():
    center = erlang_center(agents=3, queued=3)
    center.contact("c-0", ContactKind.ANSWERED, 40, agent="agent-1")
    center.contact("c-0", ContactKind.ENDED, 200)
    plain = msgpack.unpackb(
        msgpack.packb(
            {"queues": center.predictor.to_state(), "feed": center.feed.to_state()}
        ),
        strict_map_key=False,
    )
    restored = Center(build_predictor(load_config(None)))
    restored.predictor.restore(plain["queues"])
    restored.feed.restore(plain["feed"])
    assert restored.new_caller() == center.new_caller()
    assert restored.predictor.capacity(
        QUEUE, NOW, NOW + timedelta(hours=1)
    ) == center.predictor.capacity(QUEUE, NOW, NOW + timedelta(hours=1))
    restored.contact("c-1", ContactKind.ABANDONED, 210)
    assert restored.new_caller().ahead == 1


# The fitted wait model


@pytest.fixture(scope="module")
def model_file(bank_log, tmp_path_factory):
    return fit_first_days(bank_log, tmp_path_factory.mktemp("model"))


@pytest.mark.slow
def test_model_file_answers_waits(model_file):
    config = load_config(None).replace(prediction={"model_file": str(model_file)})
    center = Center(build_predictor(config))
    reference = LearnedPredictor(load_model(str(model_file)), [QUEUE], DayCalendar())
    for index in range(4):
        center.agent(f"agent-{index}", AgentState.READY)
        reference.observe(
            QUEUE, center.feed.agent_event(f"agent-{index}", AgentState.READY, T0)
        )
    estimate = center.new_caller()
    expected = reference.estimate_wait(QUEUE, 0, NOW)
    assert center.predictor.model is not None
    assert estimate.mean_s == pytest.approx(expected.mean_s)
    assert estimate.quantiles_s[0.5] == pytest.approx(expected.quantiles_s[0.5])


@pytest.mark.slow
def test_model_more_callers_longer_wait(model_file):
    config = load_config(None).replace(prediction={"model_file": str(model_file)})
    center = Center(build_predictor(config))
    for index in range(4):
        center.agent(f"agent-{index}", AgentState.READY)
    empty = center.new_caller()
    for index in range(5):
        center.contact(f"c-{index}", ContactKind.QUEUED, 10 + index, queue=QUEUE)
    busy = center.new_caller()
    assert busy.ahead == 5
    assert busy.mean_s > empty.mean_s
    assert busy.quantiles_s[0.9] > empty.quantiles_s[0.9]


def test_unreadable_model_file_config_error(tmp_path):
    path = tmp_path / "not-a-model.npz"
    path.write_bytes(b"plain text")
    config = load_config(None).replace(prediction={"model_file": str(path)})
    with pytest.raises(ConfigError) as raised:
        build_predictor(config)
    assert raised.value.key == "prediction.model_file"
