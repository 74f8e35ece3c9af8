"""CallbackScheduler: releases, leases, outcomes, retries, SMS and recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scheduler_support import T0, make_scheduler, office_hours, request

from callsure.engine.callbacks import (
    AttemptState,
    CallbackMode,
    CallbackState,
    DialMode,
    Outcome,
    SitCode,
)
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import InvalidStateError, LeaseError, ValidationError
from callsure.engine.policy import (
    PromisePolicy,
    RetryPolicy,
    RetryRule,
    SchedulerPolicy,
    SmsPolicy,
)


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


@pytest.fixture
def scheduler(db, clock):
    return make_scheduler(db, clock)


def events(scheduler, kind: str):
    return [e for e in scheduler.read_events(0, 1000) if e.kind == kind]


def dial(scheduler, order, outcome, **details):
    scheduler.start_dialing(order.attempt_id, "gw-1")
    return scheduler.report_outcome(order.attempt_id, outcome, **details)


def test_due_releases_in_entry_order_within_cap(db, clock):
    scheduler = make_scheduler(db, clock, cap=2)
    for minutes, customer in ((3, "late"), (9, "first"), (6, "middle")):
        scheduler.create(request(customer, entry_time=T0 - timedelta(minutes=minutes)))
    orders = scheduler.due()
    assert [o.customer_id for o in orders] == ["first", "middle"]
    assert scheduler.due() == []
    for order in orders:
        dial(scheduler, order, Outcome.CONNECTED)
    clock.advance(15 * 60)
    assert [o.customer_id for o in scheduler.due()] == ["late"]


def test_due_never_exceeds_free_agents(scheduler):
    for customer in ("c1", "c2", "c3"):
        scheduler.create(request(customer))
    assert len(scheduler.due(free_agents={"billing": 1})) == 1


def test_due_holds_callback_behind_longer_inbound_wait(scheduler):
    scheduler.create(request("c1", entry_time=T0 - timedelta(minutes=2)))
    held = scheduler.due(oldest_waiting={"billing": T0 - timedelta(minutes=5)})
    assert held == []
    released = scheduler.due(oldest_waiting={"billing": T0 - timedelta(minutes=1)})
    assert len(released) == 1


def test_timed_promise_not_released_early(scheduler, clock):
    when = T0 + timedelta(minutes=30)
    scheduler.create(request("c1", mode=CallbackMode.AT_TIME, requested_time=when))
    assert scheduler.due() == []
    clock.set(when)
    (order,) = scheduler.due()
    assert order.promised_time == when


def test_dial_lead_releases_before_time(db, clock):
    policy = SchedulerPolicy(promise=PromisePolicy(dial_lead_s=10))
    scheduler = make_scheduler(db, clock, policy=policy)
    when = T0 + timedelta(minutes=30)
    scheduler.create(request("c1", mode=CallbackMode.AT_TIME, requested_time=when))
    clock.set(when - timedelta(seconds=11))
    assert scheduler.due() == []
    clock.set(when - timedelta(seconds=10))
    # Its turn has not come: an inbound caller has waited longer.
    assert scheduler.due(oldest_waiting={"billing": T0 - timedelta(minutes=1)}) == []
    (order,) = scheduler.due()
    assert order.promised_time == when


@pytest.mark.parametrize("lead_s", [-1.0, 121.0])
def test_dial_lead_out_of_range_is_rejected(lead_s):
    with pytest.raises(ValidationError, match="dial_lead_s"):
        PromisePolicy(dial_lead_s=lead_s)


def test_unreleased_promise_journaled_overdue_once(scheduler, clock):
    callback = scheduler.create(request("c1"))
    no_agents = {"billing": 0}
    assert scheduler.due(free_agents=no_agents) == []
    assert events(scheduler, "callback.overdue") == []
    clock.advance(301)
    scheduler.due(free_agents=no_agents)
    (event,) = events(scheduler, "callback.overdue")
    assert event.callback_id == callback.callback_id
    clock.advance(61)
    scheduler.due(free_agents=no_agents)
    (order,) = scheduler.due()
    assert order.callback_id == callback.callback_id
    assert len(events(scheduler, "callback.overdue")) == 1


def test_dedicated_agent_then_group_fallback(scheduler, clock):
    scheduler.create(request("vip", dedicated_agent_id="a7", grade="vip", priority=20))
    (order,) = scheduler.due(ready_agents={"a7"})
    assert order.target.agent_id == "a7"
    scheduler.report_outcome(order.attempt_id, Outcome.NOT_DIALED)
    assert scheduler.due(ready_agents={"a1"}) == []
    clock.advance(301)
    (order,) = scheduler.due(ready_agents={"a1"})
    assert order.target.agent_id is None
    assert order.target.queue == "billing"


def test_second_request_clears_released_dedication(scheduler):
    first = scheduler.create(request("vip", dedicated_agent_id="a7", grade="vip"))
    again = scheduler.create(request("vip", grade="regular"))
    assert again.callback_id == first.callback_id
    assert again.dedicated_agent_id is None
    assert again.fallback_at is None
    (order,) = scheduler.due(ready_agents={"a1"})
    assert order.target.agent_id is None


def test_agent_first_mode_in_orders(db, clock):
    agent_first = {"billing": DialMode.AGENT_FIRST}
    policy = SchedulerPolicy(promise=PromisePolicy(dial_modes=agent_first))
    scheduler = make_scheduler(db, clock, policy=policy)
    scheduler.create(request("c1"))
    scheduler.create(request("c2", queue="sales"))
    modes = {o.target.queue: o.dial_mode for o in scheduler.due()}
    assert modes == {"billing": DialMode.AGENT_FIRST, "sales": DialMode.CUSTOMER_FIRST}


def test_not_dialed_does_not_count(scheduler):
    callback = scheduler.create(request("c1"))
    (order,) = scheduler.due()
    result = scheduler.report_outcome(order.attempt_id, Outcome.NOT_DIALED)
    assert result.callback.state is CallbackState.PENDING
    assert result.callback.attempts == 0
    (again,) = scheduler.due()
    assert again.attempt_id == f"{callback.callback_id}/2"


def test_connected_completes(scheduler):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    result = dial(scheduler, order, Outcome.CONNECTED, agent_id="a1")
    assert result.callback.state is CallbackState.COMPLETED
    assert result.attempt.agent_id == "a1"


def test_no_retry_while_attempt_in_flight(scheduler, clock):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    clock.advance(60)
    assert scheduler.due() == []
    assert (
        scheduler.store.open_attempt(order.callback_id).attempt_id == order.attempt_id
    )


def test_busy_retried_after_delay(db, clock):
    retry = RetryPolicy(rules={Outcome.BUSY: RetryRule(2, (120.0, 600.0))})
    scheduler = make_scheduler(db, clock, policy=SchedulerPolicy(retry=retry))
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    result = dial(scheduler, order, Outcome.BUSY)
    assert result.next_attempt_at == T0 + timedelta(seconds=120)
    clock.advance(119)
    assert scheduler.due() == []
    clock.advance(1)
    (second,) = scheduler.due()
    assert second.attempt_number == 2
    assert second.idempotency_key != order.idempotency_key


def test_retry_moves_into_next_window(db, clock):
    policy = SchedulerPolicy(promise=PromisePolicy(expiry_s=24 * 3600.0))
    scheduler = make_scheduler(db, clock, policy=policy)
    scheduler.set_calendar("*", office_hours())
    clock.set(T0.replace(hour=17, minute=55))
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    result = dial(scheduler, order, Outcome.NO_ANSWER)
    assert result.next_attempt_at == T0.replace(day=3, hour=8)


def test_disconnected_sit_fails_without_sms(scheduler):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    result = dial(scheduler, order, Outcome.SIT, sit_code=SitCode.IC)
    assert result.callback.state is CallbackState.FAILED
    assert "number unreachable" in result.callback.reason
    assert result.sms_text is None
    assert events(scheduler, "sms.requested") == []


def test_disconnected_sit_sms_when_configured(db, clock):
    policy = SchedulerPolicy(sms=SmsPolicy(on_bad_number=True))
    scheduler = make_scheduler(db, clock, policy=policy)
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    result = dial(scheduler, order, Outcome.SIT, sit_code="VC")
    assert result.sms_text is not None


def test_exhausted_ladder_requests_sms(db, clock):
    retry = RetryPolicy(rules={Outcome.MACHINE: RetryRule(1, (60.0,))})
    sms = SmsPolicy(templates={"en": "Missed you about {queue}, ref {callback_id}."})
    scheduler = make_scheduler(db, clock, policy=SchedulerPolicy(retry=retry, sms=sms))
    callback = scheduler.create(request("c1", phone="+14155550123"))
    (order,) = scheduler.due()
    dial(scheduler, order, Outcome.MACHINE)
    clock.advance(60)
    (order,) = scheduler.due()
    result = dial(scheduler, order, Outcome.MACHINE)
    assert result.callback.state is CallbackState.FAILED
    assert result.sms_text == f"Missed you about billing, ref {callback.callback_id}."
    (sms_event,) = events(scheduler, "sms.requested")
    assert sms_event.payload["masked_number"] == "+14*******23"
    assert "+14155550123" not in repr(sms_event.payload)


def test_same_outcome_replay_is_idempotent(scheduler):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    first = dial(scheduler, order, Outcome.BUSY)
    again = scheduler.report_outcome(order.attempt_id, Outcome.BUSY)
    assert again.callback == first.callback
    assert len(events(scheduler, "attempt.outcome")) == 1


def test_conflicting_outcome_raises(scheduler):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    dial(scheduler, order, Outcome.BUSY)
    with pytest.raises(InvalidStateError, match="already ended as busy"):
        scheduler.report_outcome(order.attempt_id, Outcome.CONNECTED)


def test_start_dialing_twice_raises(scheduler):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    with pytest.raises(LeaseError, match="do not dial"):
        scheduler.start_dialing(order.attempt_id, "gw-2")


def test_not_dialed_after_dialing_rejected(scheduler):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    with pytest.raises(InvalidStateError, match="started dialing"):
        scheduler.report_outcome(order.attempt_id, Outcome.NOT_DIALED)


def test_expired_issued_lease_is_not_dialed(scheduler, clock):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    clock.advance(121)
    (again,) = scheduler.due()
    attempt = scheduler.store.get_attempt(order.attempt_id)
    assert attempt.outcome is Outcome.NOT_DIALED
    assert again.attempt_number == 2
    with pytest.raises(LeaseError):
        scheduler.start_dialing(order.attempt_id, "gw-1")


def test_expired_dialing_lease_is_unknown_then_retried(scheduler, clock):
    callback = scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    clock.advance(121)
    assert scheduler.due() == []
    attempt = scheduler.store.get_attempt(order.attempt_id)
    assert attempt.outcome is Outcome.UNKNOWN
    assert scheduler.get(callback.callback_id).attempts == 1
    clock.advance(120)
    (retry,) = scheduler.due()
    assert retry.attempt_id == f"{callback.callback_id}/2"


def test_renewed_lease_survives(scheduler, clock):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    clock.advance(100)
    scheduler.renew_lease(order.attempt_id, "gw-1")
    clock.advance(100)
    scheduler.due()
    assert scheduler.store.get_attempt(order.attempt_id).state is AttemptState.DIALING


def test_renew_by_other_owner_raises(scheduler):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    with pytest.raises(LeaseError, match="gw-2"):
        scheduler.renew_lease(order.attempt_id, "gw-2")


def test_late_connected_completes_promise(scheduler, clock):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    clock.advance(121)
    scheduler.due()
    result = scheduler.report_outcome(order.attempt_id, Outcome.CONNECTED)
    assert result.callback.state is CallbackState.COMPLETED
    assert len(events(scheduler, "attempt.late_outcome")) == 1


def test_cancel_during_dial_applies_after_outcome(scheduler):
    callback = scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    during = scheduler.cancel(callback.callback_id, "customer asked")
    assert during.state is CallbackState.DIALING
    result = scheduler.report_outcome(order.attempt_id, Outcome.BUSY)
    assert result.callback.state is CallbackState.CANCELLED
    assert result.callback.reason == "customer asked"


def test_reached_agent_during_dial_drops_after_outcome(scheduler, clock):
    scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw-1")
    clock.advance(10)
    scheduler.customer_reached_agent("c1", "billing", clock.now())
    result = scheduler.report_outcome(order.attempt_id, Outcome.NO_ANSWER)
    assert result.callback.state is CallbackState.DROPPED


def test_expired_promise_escalated_with_sms(scheduler, clock):
    scheduler.set_calendar("*", office_hours())
    clock.set(T0.replace(hour=17, minute=59))
    callback = scheduler.create(request("c1"))
    clock.advance(5 * 3600)
    scheduler.due()
    assert scheduler.get(callback.callback_id).state is CallbackState.EXPIRED
    assert [e.callback_id for e in events(scheduler, "sms.requested")] == [
        callback.callback_id
    ]


def test_recover_after_downtime(db, clock):
    scheduler = make_scheduler(db, clock)
    overdue = scheduler.create(request("c1"))
    soon = scheduler.create(
        request("c2", mode=CallbackMode.AT_TIME, requested_time=T0 + timedelta(hours=3))
    )
    (order,) = [o for o in scheduler.due() if o.callback_id == overdue.callback_id]
    scheduler.start_dialing(order.attempt_id, "gw-1")
    gone = scheduler.create(request("c3", queue="sales"))
    scheduler.store.close()

    clock.advance(4 * 3600 + 60)  # downtime: c3 (ASAP, 4 h expiry) expires
    restarted = make_scheduler(db, clock)
    report = restarted.recover()
    assert report.unknown_outcomes == 1
    assert report.expired == 1
    assert report.overdue == 1
    assert restarted.get(gone.callback_id).state is CallbackState.EXPIRED
    assert restarted.get(soon.callback_id).state is CallbackState.PENDING
    released = {o.callback_id for o in restarted.due()}
    assert soon.callback_id in released
    assert events(restarted, "callback.overdue")


def test_undialed_release_frees_capacity(db, clock):
    scheduler = make_scheduler(db, clock, cap=1)
    scheduler.create(request("c1", entry_time=T0 - timedelta(minutes=2)))
    scheduler.create(request("c2"))
    (first,) = scheduler.due()
    scheduler.report_outcome(first.attempt_id, Outcome.NOT_DIALED)
    (again,) = scheduler.due()
    assert again.callback_id == first.callback_id
    dial(scheduler, again, Outcome.CONNECTED)
    assert scheduler.due() == []
