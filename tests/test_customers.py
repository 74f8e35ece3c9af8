"""Customer grades, repeat callers, contact history; the agent roster."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import msgpack
import pytest

from callsure.engine.agents import AgentRoster, AgentState
from callsure.engine.callbacks import MAX_ID_LENGTH
from callsure.engine.customers import (
    ContactEvent,
    ContactKind,
    CustomerBook,
    Grade,
    GradeRules,
    RepeatCallerRule,
    grade_rules_from_plain,
    repeat_rule_from_plain,
)
from callsure.engine.exceptions import InvalidStateError, ValidationError
from callsure.engine.policy import to_plain

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def arrive(book: CustomerBook, customer_id: str, when: datetime):
    return book.record(ContactEvent(customer_id, ContactKind.ARRIVED, when, "billing"))


def test_vip_by_list():
    book = CustomerBook(GradeRules(vip_ids=frozenset({"c1"})))
    assert book.grade("c1", T0) is Grade.VIP
    assert book.grade("c2", T0) is Grade.REGULAR


def test_vip_by_crm_attribute():
    book = CustomerBook(GradeRules(vip_attributes={"segment": ("gold",)}))
    book.set_attributes("c1", {"segment": "gold"})
    book.set_attributes("c2", {"segment": "basic"})
    assert book.grade("c1", T0) is Grade.VIP
    assert book.grade("c2", T0) is Grade.REGULAR


def test_complaint_history_grades_complaint():
    book = CustomerBook(GradeRules(complaint_threshold=2, complaint_window_days=30))
    book.record_complaint("c1", T0 - timedelta(days=40))
    book.record_complaint("c1", T0 - timedelta(days=3))
    assert book.grade("c1", T0) is Grade.REGULAR
    book.record_complaint("c1", T0 - timedelta(days=1))
    assert book.grade("c1", T0) is Grade.COMPLAINT


def test_vip_wins_over_complaint():
    rules = GradeRules(vip_ids=frozenset({"c1"}), complaint_ids=frozenset({"c1"}))
    assert CustomerBook(rules).grade("c1", T0) is Grade.VIP


def test_four_calls_in_a_day_is_repeat_caller():
    book = CustomerBook(repeat_rule=RepeatCallerRule(((4, 1.0), (5, 3.0))))
    for hours in (0, 2, 5):
        status = arrive(book, "c1", T0 + timedelta(hours=hours))
    assert not status.repeat_caller
    status = arrive(book, "c1", T0 + timedelta(hours=20))
    assert status.repeat_caller
    assert status.offer_callback


def test_five_calls_in_three_days_is_repeat_caller():
    book = CustomerBook(repeat_rule=RepeatCallerRule(((4, 1.0), (5, 3.0))))
    for day in range(4):
        status = arrive(book, "c1", T0 + timedelta(days=day * 0.6))
    assert not status.repeat_caller
    status = arrive(book, "c1", T0 + timedelta(days=2.5))
    assert status.repeat_caller


def test_old_calls_fall_out_of_window():
    book = CustomerBook(repeat_rule=RepeatCallerRule(((2, 1.0),)))
    arrive(book, "c1", T0)
    status = arrive(book, "c1", T0 + timedelta(days=2))
    assert not status.repeat_caller


def test_out_of_order_arrivals_counted():
    book = CustomerBook(repeat_rule=RepeatCallerRule(((3, 1.0),)))
    arrive(book, "c1", T0 + timedelta(hours=3))
    arrive(book, "c1", T0 + timedelta(hours=1))
    status = arrive(book, "c1", T0 + timedelta(hours=2))
    assert status.repeat_caller


def test_repeat_caller_priority_boost():
    rules = GradeRules(priorities={"vip": 20, "complaint": 10, "regular": 0})
    book = CustomerBook(rules, RepeatCallerRule(((1, 1.0),), priority_boost=5))
    status = arrive(book, "c1", T0)
    assert status.priority == 5


def test_reached_agent_since():
    book = CustomerBook()
    book.record(ContactEvent("c1", ContactKind.ANSWERED, T0, "billing", "a1"))
    assert book.reached_agent_since("c1", "billing", T0 - timedelta(minutes=5))
    assert not book.reached_agent_since("c1", "billing", T0 + timedelta(seconds=1))
    assert not book.reached_agent_since("c1", "sales", T0 - timedelta(minutes=5))


def test_naive_event_time_rejected():
    book = CustomerBook()
    with pytest.raises(ValidationError, match="timezone-aware"):
        book.record(ContactEvent("c1", ContactKind.ARRIVED, datetime(2026, 1, 1)))


def test_book_state_survives_msgpack_round_trip():
    book = CustomerBook(repeat_rule=RepeatCallerRule(((2, 1.0),)))
    arrive(book, "c1", T0)
    arrive(book, "c1", T0 + timedelta(hours=1))
    book.set_attributes("c1", {"segment": "gold"}, dedicated_agent_id="a7")
    book.record_complaint("c1", T0)
    book.record(ContactEvent("c1", ContactKind.ANSWERED, T0, "billing", "a1"))
    state = msgpack.unpackb(msgpack.packb(book.to_state()), strict_map_key=False)
    restored = CustomerBook.from_state(state, book.rules, book.repeat_rule)
    now = T0 + timedelta(hours=2)
    assert restored.status("c1", now) == book.status("c1", now)
    assert restored.reached_agent_since("c1", "billing", T0)


def test_rules_round_trip_plain_forms():
    rules = GradeRules(
        vip_ids=frozenset({"c1"}), vip_attributes={"segment": ("gold", "platinum")}
    )
    rule = RepeatCallerRule(((3, 1.0),), priority_boost=2)
    assert grade_rules_from_plain(to_plain(rules)) == rules
    assert repeat_rule_from_plain(to_plain(rule)) == rule


def test_invalid_repeat_rule_rejected():
    with pytest.raises(ValidationError, match="thresholds"):
        RepeatCallerRule(((0, 1.0),))


# The agent roster of one group


def roster_with_ready(*agent_ids: str) -> AgentRoster:
    roster = AgentRoster("billing")
    for offset, agent_id in enumerate(agent_ids):
        roster.login(agent_id, T0, skills=("billing",))
        roster.set_state(agent_id, AgentState.READY, T0 + timedelta(seconds=offset))
    return roster


def test_free_count_follows_cti_states():
    roster = roster_with_ready("a1", "a2", "a3")
    roster.set_state("a2", AgentState.BUSY, T0 + timedelta(minutes=1))
    roster.set_state("a3", AgentState.WRAP_UP, T0 + timedelta(minutes=1))
    assert roster.free_count(T0 + timedelta(minutes=1)) == 1


def test_stale_cti_event_ignored():
    roster = roster_with_ready("a1")
    roster.set_state("a1", AgentState.BUSY, T0 + timedelta(minutes=2))
    roster.set_state("a1", AgentState.READY, T0 + timedelta(minutes=1))
    assert roster.agent("a1").state is AgentState.BUSY


def test_reservation_takes_longest_ready_agent():
    roster = roster_with_ready("a1", "a2")
    now = T0 + timedelta(minutes=1)
    reservation = roster.reserve("cb/1", "cb", now + timedelta(minutes=2), now)
    assert reservation.agent_id == "a1"
    assert roster.free_count(now) == 1


def test_reservation_is_idempotent():
    roster = roster_with_ready("a1", "a2")
    now = T0 + timedelta(minutes=1)
    first = roster.reserve("cb/1", "cb", now + timedelta(minutes=2), now)
    again = roster.reserve("cb/1", "cb", now + timedelta(minutes=2), now)
    assert again == first
    assert roster.free_count(now) == 1


def test_reservation_expires():
    roster = roster_with_ready("a1")
    now = T0 + timedelta(minutes=1)
    roster.reserve("cb/1", "cb", now + timedelta(minutes=2), now)
    assert roster.free_count(now + timedelta(minutes=3)) == 1


def test_no_free_agent_gives_none():
    roster = roster_with_ready("a1")
    now = T0 + timedelta(minutes=1)
    roster.reserve("cb/1", "cb", now + timedelta(minutes=2), now)
    assert roster.reserve("cb2/1", "cb2", now + timedelta(minutes=2), now) is None


def test_dedicated_agent_reserved_by_id():
    roster = roster_with_ready("a1", "a2")
    roster.assign_dedicated("a2", {"vip1"})
    now = T0 + timedelta(minutes=1)
    assert roster.dedicated_agent_for("vip1") == "a2"
    reservation = roster.reserve(
        "cb/2", "cb", now + timedelta(minutes=2), now, agent_id="a2"
    )
    assert reservation.agent_id == "a2"


def test_outbound_agent_counts_only_when_blended():
    roster = AgentRoster("billing")
    roster.login("o1", T0, outbound=True)
    roster.set_state("o1", AgentState.READY, T0)
    assert roster.free_count(T0) == 0
    roster.blend("o1")
    assert roster.free_count(T0) == 1


def test_inbound_agent_cannot_blend():
    roster = roster_with_ready("a1")
    with pytest.raises(InvalidStateError, match="only outbound"):
        roster.blend("a1")


def test_agent_leaving_ready_loses_reservation():
    roster = roster_with_ready("a1")
    now = T0 + timedelta(minutes=1)
    roster.reserve("cb/1", "cb", now + timedelta(minutes=5), now)
    roster.set_state("a1", AgentState.NOT_READY, now)
    assert roster.reservations == {}


def test_roster_state_round_trip():
    roster = roster_with_ready("a1", "a2")
    roster.assign_dedicated("a1", {"vip1"})
    now = T0 + timedelta(minutes=1)
    roster.reserve("cb/1", "cb", now + timedelta(minutes=5), now)
    state = msgpack.unpackb(msgpack.packb(roster.to_state()), strict_map_key=False)
    restored = AgentRoster.from_state(state)
    assert restored == roster
    assert pickle.loads(pickle.dumps(restored)) == roster


def test_customer_id_over_limit_rejected():
    book = CustomerBook()
    with pytest.raises(ValidationError) as info:
        arrive(book, "c" * (MAX_ID_LENGTH + 1), T0)
    assert info.value.field == "customer_id"
    assert f"at most {MAX_ID_LENGTH} characters" in info.value.fix
    assert str(MAX_ID_LENGTH + 1) in info.value.fix
    assert len(book) == 0


def test_customer_id_at_limit_accepted():
    book = CustomerBook()
    arrive(book, "c" * MAX_ID_LENGTH, T0)
    assert len(book) == 1


def test_contact_queue_over_limit_rejected():
    book = CustomerBook()
    event = ContactEvent("c1", ContactKind.ANSWERED, T0, "q" * 1_000_000)
    with pytest.raises(ValidationError) as info:
        book.record(event)
    assert info.value.field == "queue"
    assert "1000000" in info.value.fix
    assert len(str(info.value)) < 200
    assert len(book) == 0


def test_dedicated_agent_id_over_limit_rejected():
    book = CustomerBook()
    with pytest.raises(ValidationError) as info:
        book.set_attributes("c1", {}, dedicated_agent_id="a" * (MAX_ID_LENGTH + 1))
    assert info.value.field == "dedicated_agent_id"
    assert len(book) == 0
