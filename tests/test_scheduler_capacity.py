"""Capacity bookings: a booked promise keeps its room until it is released.

An interval's bookings and its releases count each promise once, a lower
recomputed capacity never holds a booked promise, and a predicted promise
keeps the customer's place in the queue.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from scheduler_support import T0, make_predictor, make_scheduler, request

from callsure.engine.callbacks import CallbackMode, CallbackState, Outcome
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import InfeasibleTimeError
from callsure.engine.policy import CapacityLimits
from callsure.engine.prediction import StaticForecast
from callsure.engine.scheduler import CallbackScheduler
from callsure.engine.store import SQLiteStore

# Three calls a minute for 8 agents: inbound needs every agent (and more)
# for its service level, so the predictor's capacity is 0.
OVERLOADED = StaticForecast(
    arrivals_per_s=1 / 20, agents_on_duty=8, mean_handle_s=180, mean_patience_s=345
)
NO_AGENTS = StaticForecast(
    arrivals_per_s=1 / 60, agents_on_duty=0, mean_handle_s=180, mean_patience_s=345
)


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


def at_time(customer: str, when, **fields):
    return request(customer, mode=CallbackMode.AT_TIME, requested_time=when, **fields)


def complete(scheduler, orders):
    for order in orders:
        scheduler.start_dialing(order.attempt_id, "gw")
        scheduler.report_outcome(order.attempt_id, Outcome.CONNECTED)


def test_predicted_without_agents_is_infeasible(db, clock):
    scheduler = make_scheduler(db, clock, predictor=make_predictor(NO_AGENTS))
    entry = T0 - timedelta(minutes=2)
    with pytest.raises(InfeasibleTimeError, match="no agent"):
        scheduler.create(request("c1", mode=CallbackMode.PREDICTED, entry_time=entry))
    assert scheduler.store.count_callbacks() == 0


def test_completed_promises_keep_interval_full(db, clock):
    scheduler = make_scheduler(db, clock, cap=2)
    when = T0 + timedelta(minutes=5)
    scheduler.create(at_time("c1", when))
    scheduler.create(at_time("c2", when))
    clock.advance(300)
    orders = scheduler.due()
    assert len(orders) == 2
    complete(scheduler, orders)

    # Both releases took the interval's two places, so a third request for
    # the same interval moves to the next one instead of being held there.
    with pytest.raises(InfeasibleTimeError, match="capacity") as caught:
        scheduler.create(at_time("c3", when + timedelta(minutes=2)))
    assert caught.value.nearest_feasible == T0 + timedelta(minutes=15)


def test_interval_load_counts_each_promise_once(db, clock):
    scheduler = make_scheduler(db, clock, cap=3)
    planner = scheduler.planner
    interval = planner.interval_of(T0)
    when = T0 + timedelta(minutes=5)
    scheduler.create(at_time("c1", when))
    scheduler.create(at_time("c2", when))
    assert planner.interval_load("billing", *interval) == 2
    clock.advance(300)
    orders = scheduler.due()
    assert planner.interval_load("billing", *interval) == 2
    complete(scheduler, orders[:1])
    scheduler.report_outcome(orders[1].attempt_id, Outcome.NOT_DIALED)
    # The undialed promise took no agent: it holds its booking again.
    assert scheduler.store.count_booked("billing", *interval) == 1
    assert planner.interval_load("billing", *interval) == 2


def test_lower_capacity_never_holds_booked(db, clock):
    scheduler = make_scheduler(db, clock)
    when = T0 + timedelta(minutes=5)
    booked = [scheduler.create(at_time(f"c{i}", when)) for i in range(3)]
    # The forecast turns to an overload after the bookings, so the
    # capacity recomputed at release time is 0.
    scheduler.predictor = make_predictor(OVERLOADED)
    clock.advance(300)
    assert scheduler.planner.release_room("billing", clock.now())[1] < 0

    orders = scheduler.due()

    assert sorted(order.callback_id for order in orders) == sorted(
        c.callback_id for c in booked
    )


def test_overload_stops_new_bookings(db, clock):
    scheduler = make_scheduler(db, clock, predictor=make_predictor(OVERLOADED))
    when = T0 + timedelta(minutes=30)
    with pytest.raises(InfeasibleTimeError, match="capacity"):
        scheduler.create(at_time("c1", when))


def test_asap_leaves_room_for_bookings(db, clock):
    scheduler = make_scheduler(db, clock, cap=2)
    when = T0 + timedelta(minutes=10)
    booked = [scheduler.create(at_time(f"c{i}", when)) for i in range(2)]
    clock.advance(60)
    asap = scheduler.create(request("c9"))

    assert scheduler.due() == []

    clock.advance(540)
    orders = scheduler.due()
    assert sorted(order.callback_id for order in orders) == sorted(
        c.callback_id for c in booked
    )
    assert scheduler.get(asap.callback_id).state is CallbackState.PENDING


def test_earlier_asap_goes_before_booked(db, clock):
    scheduler = make_scheduler(db, clock, cap=3)
    when = T0 + timedelta(minutes=10)
    asap = scheduler.create(request("c9", entry_time=T0 - timedelta(minutes=5)))
    booked = [scheduler.create(at_time(f"c{i}", when)) for i in range(2)]
    # The lower cap leaves no spare place, yet the ASAP promise goes first
    # because it entered before the bookings; the cap holds one booking.
    scheduler.set_capacity_limits(
        CapacityLimits(max_per_interval={"billing": 2, "sales": 2})
    )
    clock.advance(600)

    orders = scheduler.due()

    assert [order.callback_id for order in orders][0] == asap.callback_id
    assert len(orders) == 2
    assert orders[1].callback_id in {c.callback_id for c in booked}


def test_admin_cap_limits_booked_releases(db, clock):
    scheduler = make_scheduler(db, clock, cap=3)
    first = scheduler.create(at_time("c8", T0))
    when = T0 + timedelta(minutes=5)
    for i in range(2):
        scheduler.create(at_time(f"c{i}", when))
    early = scheduler.due()
    assert [order.callback_id for order in early] == [first.callback_id]
    scheduler.start_dialing(early[0].attempt_id, "gw")
    scheduler.report_outcome(early[0].attempt_id, Outcome.BUSY)
    # Take one place of the interval with an unbooked release, so the two
    # bookings and the first release fill the admin cap between them.
    scheduler.set_capacity_limits(
        CapacityLimits(max_per_interval={"billing": 2, "sales": 2})
    )
    clock.advance(300)

    orders = scheduler.due()

    interval = scheduler.planner.interval_of(clock.now())
    assert scheduler.store.count_released("billing", *interval) == 2
    assert len(orders) == 1


def test_predicted_promise_keeps_queue_place(db, clock):
    predictor = make_predictor(OVERLOADED)
    scheduler = CallbackScheduler(SQLiteStore(db), predictor, clock)
    entry = T0 - timedelta(minutes=1)
    estimate = predictor.estimate_wait("billing", 4, T0)
    quantile = scheduler.policy.promise.predicted_quantile

    callback = scheduler.create(
        request("c1", mode=CallbackMode.PREDICTED, entry_time=entry, queue_position=4)
    )

    expected = T0 + timedelta(seconds=estimate.quantiles_s[quantile])
    assert abs((callback.promised_time - expected).total_seconds()) < 1e-3


def test_predicted_against_capacity_moves_later(db, clock):
    predictor = make_predictor(OVERLOADED)
    scheduler = CallbackScheduler(SQLiteStore(db), predictor, clock)
    scheduler.planner.predicted_keeps_place = False
    with pytest.raises(InfeasibleTimeError, match="capacity"):
        scheduler.create(request("c1", mode=CallbackMode.PREDICTED, queue_position=4))


@pytest.mark.parametrize("mode", [CallbackMode.ASAP, CallbackMode.PREDICTED])
def test_zero_cap_refuses_every_mode(db, clock, mode):
    scheduler = make_scheduler(db, clock, cap=3)
    scheduler.set_capacity_limits(CapacityLimits(max_per_interval={"billing": 0}))
    with pytest.raises(InfeasibleTimeError):
        scheduler.create(request("c1", mode=mode))
    with pytest.raises(InfeasibleTimeError):
        scheduler.create(at_time("c2", T0 + timedelta(minutes=5)))
    # Another queue keeps its callbacks.
    assert scheduler.create(request("c3", queue="sales")).state is CallbackState.PENDING
