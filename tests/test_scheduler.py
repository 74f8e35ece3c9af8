"""CallbackScheduler: creating, merging, listing, cancelling promises; admin."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta

import pytest
from scheduler_support import T0, make_scheduler, office_hours, request

from callsure.engine.callbacks import CallbackMode, CallbackState, Outcome
from callsure.engine.clock import VirtualClock
from callsure.engine.customers import GradeRules, RepeatCallerRule
from callsure.engine.exceptions import (
    InfeasibleTimeError,
    InvalidPhoneNumberError,
    InvalidStateError,
    InvalidTimeError,
    NotFoundError,
    RequestIdReusedError,
    ValidationError,
)
from callsure.engine.policy import RetryPolicy, RetryRule
from callsure.engine.store import SQLiteStore


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


@pytest.fixture
def scheduler(db, clock):
    return make_scheduler(db, clock)


def kinds(scheduler) -> list[str]:
    return [event.kind for event in scheduler.read_events(0, 1000)]


def test_create_is_durable_on_return(scheduler, db):
    callback = scheduler.create(request("c1"))
    other = SQLiteStore(db)
    assert other.get_callback(callback.callback_id) == callback
    assert other.callback_for_request(callback.request_id) == callback.callback_id


def test_create_journals_created_event(scheduler):
    callback = scheduler.create(request("c1"))
    (event,) = scheduler.read_events(0, 10)
    assert event.kind == "callback.created"
    assert event.callback_id == callback.callback_id


def test_replayed_request_returns_first_result(scheduler, clock):
    first = scheduler.create(request("c1", request_id="r-1", phone="+14155550199"))
    clock.advance(30)
    # The same number written with separators is the same request.
    replay = scheduler.create(request("c1", request_id="r-1", phone="+1 415-555-0199"))
    assert replay == first
    assert kinds(scheduler) == ["callback.created"]


def test_create_or_replay_reports_replay(scheduler):
    first, replayed = scheduler.create_or_replay(
        request("c1", request_id="r-1", phone="+14155550199")
    )
    assert replayed is False
    again, replayed = scheduler.create_or_replay(
        request("c1", request_id="r-1", phone="+14155550199")
    )
    assert replayed is True
    assert again == first


@pytest.mark.parametrize(
    "changed",
    [
        {"phone": "+14155550188"},
        {"queue": "sales"},
        {"mode": CallbackMode.AT_TIME, "requested_time": T0 + timedelta(hours=1)},
    ],
)
def test_reused_request_id_rejected(scheduler, db, changed):
    fields = {"request_id": "r-1", "phone": "+14155550199"}
    first = scheduler.create(request("c1", **fields))
    with pytest.raises(RequestIdReusedError) as caught:
        scheduler.create(request("c1", **{**fields, **changed}))
    assert caught.value.field == "request_id"
    assert "r-1" in str(caught.value)
    assert "new request id" in str(caught.value)
    # Nothing changed, and a replay read from the file still returns it.
    assert kinds(scheduler) == ["callback.created"]
    reopened = make_scheduler(db, scheduler.clock)
    assert reopened.create(request("c1", **fields)) == first


def test_merged_request_replay_returns_promise(scheduler, clock):
    scheduler.create(request("c1", request_id="r-1", phone="+14155550199"))
    clock.advance(30)
    second = scheduler.create(request("c1", request_id="r-2", phone="+14155550177"))
    clock.advance(30)
    replay = scheduler.create(request("c1", request_id="r-2", phone="+14155550177"))
    assert replay == second
    with pytest.raises(RequestIdReusedError):
        scheduler.create(request("c1", request_id="r-2", phone="+14155550166"))


def test_second_request_updates_pending_promise(scheduler, clock):
    first = scheduler.create(request("c1", entry_time=T0 - timedelta(minutes=5)))
    clock.advance(60)
    second = scheduler.create(request("c1", phone="+14155550177"))
    assert second.callback_id == first.callback_id
    assert second.entry_time == first.entry_time
    assert second.phone_number == "+14155550177"
    assert kinds(scheduler) == ["callback.created", "callback.updated"]


def test_other_queue_gets_own_promise(scheduler):
    first = scheduler.create(request("c1"))
    second = scheduler.create(request("c1", queue="sales"))
    assert first.callback_id != second.callback_id


def test_invalid_number_rejected_and_not_stored(scheduler):
    with pytest.raises(InvalidPhoneNumberError, match="E.164"):
        scheduler.create(request("c1", phone="0501234567"))
    assert scheduler.list()[0] == []


def test_missing_customer_rejected(scheduler):
    with pytest.raises(ValidationError, match="customer_id"):
        scheduler.create(request(""))


def test_future_entry_time_rejected(scheduler):
    with pytest.raises(InvalidTimeError, match="entry_time"):
        scheduler.create(request("c1", entry_time=T0 + timedelta(minutes=1)))


def test_entry_time_over_day_old_rejected(scheduler):
    with pytest.raises(InvalidTimeError, match="within the last 24 hours"):
        scheduler.create(request("c1", entry_time=T0 - timedelta(days=1, seconds=1)))


def test_entry_time_day_old_accepted(scheduler):
    entered = T0 - timedelta(days=1)
    assert scheduler.create(request("c1", entry_time=entered)).entry_time == entered


def test_at_time_naive_time_rejected(scheduler):
    naive = datetime(2026, 3, 2, 10, 0)
    with pytest.raises(InvalidTimeError, match="timezone-aware"):
        scheduler.create(request("c1", mode=CallbackMode.AT_TIME, requested_time=naive))


def test_at_time_in_past_rejected(scheduler):
    past = T0 - timedelta(hours=1)
    with pytest.raises(InvalidTimeError, match="past"):
        scheduler.create(request("c1", mode=CallbackMode.AT_TIME, requested_time=past))


def test_at_time_beyond_horizon_offers_nearest(scheduler):
    far = datetime(2200, 1, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(InfeasibleTimeError, match="booking horizon") as info:
        scheduler.create(request("c1", mode=CallbackMode.AT_TIME, requested_time=far))
    assert info.value.nearest_feasible is not None
    assert info.value.nearest_feasible <= T0 + timedelta(days=2)


def test_at_time_past_last_date_rejected(scheduler):
    # 23:59 local in New York is past the last UTC date there is.
    last = datetime(9999, 12, 31, 23, 59)
    with pytest.raises(InvalidTimeError, match="requested_local_time"):
        scheduler.create(
            request(
                "c1",
                mode=CallbackMode.AT_TIME,
                requested_local_time=last,
                time_zone="America/New_York",
            )
        )


def test_window_beyond_horizon_rejected(scheduler):
    scheduler.set_calendar("*", office_hours())
    with pytest.raises(InfeasibleTimeError, match="booking horizon"):
        scheduler.create(
            request(
                "c1",
                mode=CallbackMode.WINDOW,
                window_date=date(9999, 12, 31),
                window_period="day",
            )
        )


def test_at_time_feasible_is_promised(scheduler):
    when = T0 + timedelta(minutes=40)
    callback = scheduler.create(
        request("c1", mode=CallbackMode.AT_TIME, requested_time=when)
    )
    assert callback.promised_time == when
    assert callback.not_before == when


def test_at_time_outside_window_offers_nearest(scheduler):
    scheduler.set_calendar("*", office_hours())
    evening = T0.replace(hour=19)
    with pytest.raises(
        InfeasibleTimeError, match="outside the callback windows"
    ) as caught:
        scheduler.create(
            request("c1", mode=CallbackMode.AT_TIME, requested_time=evening)
        )
    nearest = caught.value.nearest_feasible
    assert nearest == T0.replace(day=3, hour=8)
    callback = scheduler.create(
        request("c1", mode=CallbackMode.AT_TIME, requested_time=nearest)
    )
    assert callback.promised_time == nearest


def test_at_time_full_interval_offers_next(db, clock):
    scheduler = make_scheduler(db, clock, cap=1)
    when = T0 + timedelta(hours=1)
    scheduler.create(request("c1", mode=CallbackMode.AT_TIME, requested_time=when))
    with pytest.raises(InfeasibleTimeError, match="capacity") as caught:
        scheduler.create(request("c2", mode=CallbackMode.AT_TIME, requested_time=when))
    assert caught.value.nearest_feasible == when + timedelta(minutes=15)


def test_local_time_in_dst_gap_rejected(scheduler):
    clock_time = datetime(2026, 3, 29, 2, 30)  # Europe/Berlin spring gap
    with pytest.raises(InvalidTimeError, match="does not exist"):
        scheduler.create(
            request(
                "c1",
                mode=CallbackMode.AT_TIME,
                requested_local_time=clock_time,
                time_zone="Europe/Berlin",
            )
        )


def test_local_time_without_zone_missing(scheduler):
    with pytest.raises(ValidationError) as raised:
        scheduler.create(
            request(
                "c1",
                mode=CallbackMode.AT_TIME,
                requested_local_time=datetime(2026, 3, 30, 10, 0),
                time_zone=None,
            )
        )
    assert str(raised.value) == (
        "missing time_zone: send the IANA zone of the local time"
    )


def test_predicted_promise_never_before_earlier_entrant(scheduler):
    first = scheduler.create(
        request("c1", mode=CallbackMode.PREDICTED, queue_position=12)
    )
    second = scheduler.create(
        request("c2", mode=CallbackMode.PREDICTED, queue_position=0)
    )
    assert first.promised_time > T0
    assert second.promised_time >= first.promised_time


def test_window_promise_inside_window(scheduler):
    scheduler.set_calendar("*", office_hours())
    callback = scheduler.create(
        request(
            "c1",
            mode=CallbackMode.WINDOW,
            window_date=date(2026, 3, 3),
            window_period="day",
            time_zone="UTC",
        )
    )
    assert callback.promised_time == T0.replace(day=3, hour=8)
    assert callback.window_end == T0.replace(day=3, hour=18)
    stored = scheduler.get(callback.callback_id)
    assert stored.window_date == "2026-03-03"
    assert stored.window_period == "day"
    assert stored.time_zone == "UTC"


def test_window_in_other_zone_rejected(scheduler):
    scheduler.set_calendar("*", office_hours())
    with pytest.raises(ValidationError) as raised:
        scheduler.create(
            request(
                "c1",
                mode=CallbackMode.WINDOW,
                window_date=date(2026, 3, 3),
                window_period="day",
                time_zone="Europe/Berlin",
            )
        )
    assert raised.value.field == "time_zone"
    assert "calendar in UTC" in str(raised.value)


def test_window_on_holiday_rejected(scheduler):
    scheduler.set_calendar(
        "*", office_hours(extra_holidays=frozenset({date(2026, 3, 3)}))
    )
    with pytest.raises(InvalidTimeError, match="open periods: none"):
        scheduler.create(
            request(
                "c1",
                mode=CallbackMode.WINDOW,
                window_date=date(2026, 3, 3),
                window_period="day",
            )
        )


def test_get_unknown_id_raises_not_found(scheduler):
    with pytest.raises(NotFoundError, match="cb_missing"):
        scheduler.get("cb_missing")


def test_list_pages_through_all(scheduler):
    created = {scheduler.create(request(f"c{i}")).callback_id for i in range(7)}
    seen, token = [], ""
    while True:
        items, token = scheduler.list(page_size=3, page_token=token)
        seen.extend(c.callback_id for c in items)
        if not token:
            break
    assert set(seen) == created
    assert len(seen) == 7


@pytest.mark.parametrize("token", ["a", "!!garbage%%", "zzz", "cb_1.0123456789ab"])
def test_list_made_up_token_rejected(scheduler, token):
    scheduler.create(request("c1"))
    with pytest.raises(ValidationError) as raised:
        scheduler.list(page_token=token)
    assert raised.value.field == "page_token"


def test_list_token_of_other_filters_rejected(scheduler):
    for i in range(3):
        scheduler.create(request(f"c{i}"))
    _, token = scheduler.list(page_size=1)
    with pytest.raises(ValidationError, match="same filters"):
        scheduler.list(page_size=1, page_token=token, queue="sales")


def test_list_filters_by_state_and_customer(scheduler):
    keep = scheduler.create(request("c1"))
    gone = scheduler.create(request("c2"))
    scheduler.cancel(gone.callback_id, "customer asked")
    items, _ = scheduler.list(state="pending")
    assert [c.callback_id for c in items] == [keep.callback_id]
    items, _ = scheduler.list(customer_id="c2")
    assert [c.callback_id for c in items] == [gone.callback_id]


def test_list_rejects_bad_page_size(scheduler):
    with pytest.raises(ValidationError, match="page_size"):
        scheduler.list(page_size=0)


def test_list_rejects_unknown_state(scheduler):
    with pytest.raises(ValidationError, match="pending"):
        scheduler.list(state="sleeping")


def test_cancel_is_idempotent(scheduler):
    callback = scheduler.create(request("c1"))
    first = scheduler.cancel(callback.callback_id, "customer asked")
    again = scheduler.cancel(callback.callback_id, "customer asked")
    assert first.state is CallbackState.CANCELLED
    assert again == first


def test_cancel_completed_raises(scheduler):
    callback = scheduler.create(request("c1"))
    (order,) = scheduler.due()
    scheduler.start_dialing(order.attempt_id, "gw")
    scheduler.report_outcome(order.attempt_id, Outcome.CONNECTED)
    with pytest.raises(InvalidStateError, match="completed"):
        scheduler.cancel(callback.callback_id)


def test_reached_agent_drops_with_reason(scheduler, clock):
    callback = scheduler.create(request("c1"))
    clock.advance(120)
    (dropped,) = scheduler.customer_reached_agent("c1", "billing", clock.now())
    assert dropped.callback_id == callback.callback_id
    assert dropped.state is CallbackState.DROPPED
    assert "reached an agent of billing" in dropped.reason


def test_contact_before_request_does_not_drop(scheduler):
    scheduler.create(request("c1"))
    assert scheduler.customer_reached_agent("c1", None, T0 - timedelta(minutes=1)) == []


def test_events_mask_phone_numbers(scheduler):
    scheduler.create(request("c1", phone="+14155550123"))
    (event,) = scheduler.read_events(0, 10)
    assert event.payload["callback"]["phone_number"] == "+14*******23"


def test_read_events_resumes_after_seq(scheduler):
    for customer in ("c1", "c2", "c3"):
        scheduler.create(request(customer))
    first = scheduler.read_events(0, 2)
    rest = scheduler.read_events(first[-1].seq, 10)
    assert [e.seq for e in first + rest] == [1, 2, 3]


def test_admin_settings_survive_restart(db, clock):
    scheduler = make_scheduler(db, clock)
    retry = RetryPolicy(rules={Outcome.BUSY: RetryRule(1, (30.0,))}, max_attempts=2)
    scheduler.set_retry_policy(retry)
    scheduler.set_calendar("sales", office_hours("Europe/Berlin"))
    restarted = make_scheduler(db, clock)
    assert restarted.policy.retry == retry
    assert restarted.calendar_for("sales") == office_hours("Europe/Berlin")
    assert "policy.changed" in kinds(restarted)


def test_request_and_callback_pickle(scheduler):
    req = request("c1", ivr_history=("menu:billing", "key:2"))
    callback = scheduler.create(req)
    assert pickle.loads(pickle.dumps(req)) == req
    assert pickle.loads(pickle.dumps(callback)) == callback


def test_update_reuses_own_booking(db, clock):
    scheduler = make_scheduler(db, clock, cap=1)
    when = T0 + timedelta(hours=1)
    first = scheduler.create(
        request("c1", mode=CallbackMode.AT_TIME, requested_time=when)
    )
    moved = scheduler.create(
        request(
            "c1", mode=CallbackMode.AT_TIME, requested_time=when + timedelta(minutes=5)
        )
    )
    assert moved.callback_id == first.callback_id
    assert moved.promised_time == when + timedelta(minutes=5)


def test_customer_rules_survive_restart(db, clock):
    scheduler = make_scheduler(db, clock)
    rules = GradeRules(vip_ids=frozenset({"c9"}))
    rule = RepeatCallerRule(((3, 1.0),), priority_boost=2)
    scheduler.set_grade_rules(rules)
    scheduler.set_repeat_caller_rule(rule)
    restarted = make_scheduler(db, clock)
    assert restarted.grade_rules == rules
    assert restarted.repeat_caller_rule == rule


def test_ambiguous_local_time_rejected(scheduler):
    fall_back = datetime(2026, 10, 25, 2, 30)  # Europe/Berlin, occurs twice
    with pytest.raises(InvalidTimeError, match="occurs twice"):
        scheduler.create(
            request(
                "c1",
                mode=CallbackMode.AT_TIME,
                requested_local_time=fall_back,
                time_zone="Europe/Berlin",
            )
        )


def test_reached_agent_without_queue_drops_all(scheduler, clock):
    scheduler.create(request("c1"))
    scheduler.create(request("c1", queue="sales"))
    clock.advance(60)
    dropped = scheduler.customer_reached_agent("c1", None, clock.now())
    assert sorted(c.queue for c in dropped) == ["billing", "sales"]
