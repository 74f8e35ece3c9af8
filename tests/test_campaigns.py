"""Campaigns on the callback machinery: a real SQLite file, virtual time.

The promotion scheduler runs after the callback scheduler, as the
coordinator's dispatch step does: ``step`` below releases callbacks first
and campaign targets into what is left.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from scheduler_support import T0, make_scheduler, office_hours, request

from callsure.engine.callbacks import CallbackMode, CallbackState, Outcome
from callsure.engine.campaigns import (
    DEFAULT_SMS_TEXTS,
    CampaignKind,
    CampaignRequest,
    CampaignState,
    CampaignTarget,
)
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import (
    InvalidPhoneNumberError,
    InvalidStateError,
    LeaseError,
    RequestIdReusedError,
    ValidationError,
)
from callsure.engine.promotion import CampaignScheduler
from callsure.engine.store import SQLiteStore

HOUR = timedelta(hours=1)


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "promises.db"


@pytest.fixture
def callbacks(db, clock):
    return make_scheduler(db, clock)


@pytest.fixture
def campaigns(callbacks):
    return CampaignScheduler(callbacks)


def campaign_request(kind=CampaignKind.VIP_PROMOTION, **fields):
    label = getattr(kind, "value", kind)
    values = {
        "request_id": f"create-{label}",
        "name": f"{label} December",
        "kind": kind,
        "queue": "billing",
        "start_time": T0,
        "end_time": T0 + 8 * HOUR,
        "max_in_flight": 5,
    }
    values.update(fields)
    return CampaignRequest(**values)


def targets(*customers, **fields):
    return [
        CampaignTarget(customer, f"+1 (415) 555-{index:04d}", **fields)
        for index, customer in enumerate(customers, start=1)
    ]


def running(campaigns, kind=CampaignKind.VIP_PROMOTION, customers=(), **fields):
    campaign, _ = campaigns.create(campaign_request(kind, **fields))
    if customers:
        campaigns.add_targets(campaign.campaign_id, targets(*customers))
    return campaigns.start(campaign.campaign_id)


def step(callbacks, campaigns, **availability):
    """One dispatch step: callbacks first, then campaign targets."""
    orders = callbacks.due(
        free_agents=availability.get("free_agents"),
        ready_agents=availability.get("ready_agents"),
    )
    return orders, campaigns.due(released=orders, **availability)


def dial(callbacks, campaigns, order, outcome, **details):
    callbacks.start_dialing(order.attempt_id, "gw-1")
    return campaigns.report_outcome(order.attempt_id, outcome, **details)


def kinds(callbacks, callback_id=None):
    return [
        event.kind
        for event in callbacks.read_events(0, 1000)
        if callback_id is None or event.callback_id == callback_id
    ]


# Creating campaigns and adding targets


def test_create_stores_draft(campaigns):
    campaign, replayed = campaigns.create(campaign_request())
    assert campaign.state is CampaignState.DRAFT
    assert not replayed
    assert campaigns.get(campaign.campaign_id) == campaign


def test_create_replay_returns_first(campaigns):
    first, _ = campaigns.create(campaign_request())
    again, replayed = campaigns.create(campaign_request())
    assert replayed
    assert again.campaign_id == first.campaign_id


def test_create_reused_request_id_rejected(campaigns):
    campaigns.create(campaign_request())
    with pytest.raises(RequestIdReusedError):
        campaigns.create(campaign_request(max_in_flight=9))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": " "}, "name"),
        ({"queue": ""}, "queue"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 1001}, "max_in_flight"),
        ({"end_time": T0}, "end_time"),
        ({"start_time": T0 - 9 * HOUR, "end_time": T0 - HOUR}, "end_time"),
        ({"start_time": T0.replace(tzinfo=None)}, "start_time"),
        ({"kind": "promo"}, "kind"),
    ],
)
def test_create_invalid_field_named(campaigns, fields, field):
    with pytest.raises(ValidationError) as caught:
        campaigns.create(campaign_request(**fields))
    assert caught.value.field == field


def test_targets_stored_as_campaign_callbacks(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    added = campaigns.add_targets(
        campaign.campaign_id,
        [
            CampaignTarget(
                "c-1",
                "+1 (415) 555-0101",
                dedicated_agent_id="agent-7",
                context=("ticket=T-1042", "status=resolved"),
            )
        ],
    )
    [target] = added.targets
    assert added.added == 1
    assert target.mode is CallbackMode.CAMPAIGN
    assert target.campaign_id == campaign.campaign_id
    assert target.phone_number == "+14155550101"
    assert target.queue == "billing"
    assert target.grade == "vip"
    assert target.ivr_history == ("ticket=T-1042", "status=resolved")
    assert target.dedicated_agent_id == "agent-7"
    assert target.expires_at == campaign.end_time


def test_customer_added_twice_kept_once(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    first = campaigns.add_targets(campaign.campaign_id, targets("c-1", "c-1"))
    again = campaigns.add_targets(campaign.campaign_id, targets("c-1"))
    assert first.added == 1
    assert again.added == 0
    assert {t.callback_id for t in first.targets + again.targets} == {
        first.targets[0].callback_id
    }


def test_bad_phone_names_target_and_stores_nothing(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    bad = [*targets("c-1"), CampaignTarget("c-2", "555-0101")]
    with pytest.raises(InvalidPhoneNumberError) as caught:
        campaigns.add_targets(campaign.campaign_id, bad)
    assert caught.value.field == "targets[1].phone_number"
    assert campaigns.list_targets(campaign.campaign_id)[0] == []


def test_bad_context_names_target_line(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    bad = [CampaignTarget("c-1", "+14155550101", context=("ok", "x" * 129))]
    with pytest.raises(ValidationError) as caught:
        campaigns.add_targets(campaign.campaign_id, bad)
    assert caught.value.field == "targets[0].context"


def test_pending_target_takes_new_phone(callbacks, campaigns, caplog):
    campaign, _ = campaigns.create(campaign_request())
    [first] = campaigns.add_targets(campaign.campaign_id, targets("c-1")).targets
    caplog.set_level("INFO", logger="callsure.engine.promotion")
    moved = [CampaignTarget("c-1", "+1 415 555 0999")]
    changed = campaigns.add_targets(campaign.campaign_id, moved)
    [change] = changed.phone_changes
    assert changed.added == 0
    assert changed.targets[0].callback_id == first.callback_id
    assert changed.targets[0].phone_number == "+14155550999"
    assert callbacks.get(first.callback_id).phone_number == "+14155550999"
    assert change.replaced
    assert change.index == 0
    assert change.previous_phone_number == "+14155550001"
    assert change.requested_phone_number == "+14155550999"
    assert kinds(callbacks, first.callback_id) == [
        "callback.created",
        "callback.updated",
    ]
    assert "+14155550999" not in caplog.text
    assert "+14155550001" not in caplog.text
    assert "+14*******99" in caplog.text


def test_phone_change_retry_stores_nothing(callbacks, campaigns):
    campaign, _ = campaigns.create(campaign_request())
    campaigns.add_targets(campaign.campaign_id, targets("c-1"))
    moved = [CampaignTarget("c-1", "+14155550999")]
    campaigns.add_targets(campaign.campaign_id, moved)
    events = len(kinds(callbacks))
    again = campaigns.add_targets(campaign.campaign_id, moved)
    assert again.phone_changes == []
    assert again.added == 0
    assert len(kinds(callbacks)) == events


def test_dialing_target_keeps_phone(callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1",))
    [order] = step(callbacks, campaigns)[1]
    moved = [CampaignTarget("c-1", "+14155550999")]
    unchanged = campaigns.add_targets(campaign.campaign_id, moved)
    [change] = unchanged.phone_changes
    assert not change.replaced
    assert unchanged.targets[0].state is CallbackState.DIALING
    assert unchanged.targets[0].phone_number == "+14155550001"
    assert callbacks.get(order.callback_id).phone_number == "+14155550001"
    assert "callback.updated" not in kinds(callbacks, order.callback_id)


def test_repeated_customer_first_phone_kept(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    campaigns.add_targets(campaign.campaign_id, targets("c-1"))
    twice = [
        CampaignTarget("c-1", "+14155550998"),
        CampaignTarget("c-1", "+14155550999"),
    ]
    result = campaigns.add_targets(campaign.campaign_id, twice)
    assert [c.requested_phone_number for c in result.phone_changes] == ["+14155550998"]
    assert result.targets[1].phone_number == "+14155550998"


@pytest.mark.parametrize("language", ["en", "en-US", "pt-BR", "zh-Hant-TW", "es-419"])
def test_language_tag_accepted(campaigns, language):
    campaign, _ = campaigns.create(campaign_request())
    added = campaigns.add_targets(
        campaign.campaign_id, targets("c-1", language=language)
    )
    assert added.targets[0].language == language


@pytest.mark.parametrize(
    "language", ["klingon-xx-123", "e", "en_US", "en-", "english", "en-US-x"]
)
def test_bad_language_names_target(campaigns, language):
    campaign, _ = campaigns.create(campaign_request())
    bad = [*targets("c-1"), CampaignTarget("c-2", "+14155550102", language=language)]
    with pytest.raises(ValidationError) as caught:
        campaigns.add_targets(campaign.campaign_id, bad)
    assert caught.value.field == "targets[1].language"
    assert "such as en, en-US" in str(caught.value)
    assert campaigns.list_targets(campaign.campaign_id)[0] == []


def test_targets_listed_in_pages(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    campaigns.add_targets(campaign.campaign_id, targets(*[f"c-{i}" for i in range(5)]))
    first, token = campaigns.list_targets(campaign.campaign_id, page_size=3)
    rest, last = campaigns.list_targets(
        campaign.campaign_id, page_size=3, page_token=token
    )
    assert [t.customer_id for t in first + rest] == [f"c-{i}" for i in range(5)]
    assert last == ""


def test_targets_token_of_other_campaign_rejected(campaigns):
    first, _ = campaigns.create(campaign_request())
    second, _ = campaigns.create(campaign_request(request_id="create-second"))
    campaigns.add_targets(first.campaign_id, targets("c-1", "c-2"))
    _, token = campaigns.list_targets(first.campaign_id, page_size=1)
    with pytest.raises(ValidationError) as raised:
        campaigns.list_targets(second.campaign_id, page_token=token)
    assert raised.value.field == "page_token"


def test_campaigns_made_up_token_rejected(campaigns):
    with pytest.raises(ValidationError) as raised:
        campaigns.list(page_token="cp_0000")
    assert raised.value.field == "page_token"


# Lifecycle


def test_draft_not_released(callbacks, campaigns):
    campaign, _ = campaigns.create(campaign_request())
    campaigns.add_targets(campaign.campaign_id, targets("c-1"))
    assert step(callbacks, campaigns) == ([], [])


def test_callback_scheduler_never_releases_targets(callbacks, campaigns):
    running(campaigns, customers=("c-1",))
    assert callbacks.due() == []


def test_pause_stops_and_start_resumes(callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1",))
    campaigns.pause(campaign.campaign_id)
    assert step(callbacks, campaigns)[1] == []
    resumed = campaigns.start(campaign.campaign_id)
    assert resumed.state is CampaignState.RUNNING
    assert resumed.started_at == T0
    assert [o.customer_id for o in step(callbacks, campaigns)[1]] == ["c-1"]


def test_pause_draft_rejected(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    with pytest.raises(InvalidStateError):
        campaigns.pause(campaign.campaign_id)


def test_ended_campaign_rejects_changes(campaigns, clock):
    campaign = running(campaigns, customers=("c-1",))
    clock.advance(9 * 3600)
    with pytest.raises(InvalidStateError, match="create a new campaign"):
        campaigns.pause(campaign.campaign_id)
    with pytest.raises(InvalidStateError, match="create a new campaign"):
        campaigns.add_targets(campaign.campaign_id, targets("c-2"))
    assert campaigns.get(campaign.campaign_id).target_count == 1


def test_not_dialed_before_start_time(callbacks, campaigns, clock):
    running(campaigns, customers=("c-1",), start_time=T0 + HOUR)
    assert step(callbacks, campaigns)[1] == []
    clock.advance(3600)
    assert len(step(callbacks, campaigns)[1]) == 1


def test_end_time_expires_targets_without_sms(callbacks, campaigns, clock):
    campaign = running(campaigns, customers=("c-1",), end_time=T0 + HOUR)
    target = campaigns.list_targets(campaign.campaign_id)[0][0]
    clock.advance(3600)
    step(callbacks, campaigns)
    assert callbacks.get(target.callback_id).state is CallbackState.EXPIRED
    assert "sms.requested" not in kinds(callbacks)
    assert campaigns.get(campaign.campaign_id).state is CampaignState.FINISHED


def test_finished_when_every_target_ended(callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1",))
    [order] = step(callbacks, campaigns)[1]
    dial(callbacks, campaigns, order, Outcome.CONNECTED)
    step(callbacks, campaigns)
    finished = campaigns.get(campaign.campaign_id)
    assert finished.state is CampaignState.FINISHED
    assert finished.reason == "every target ended"
    with pytest.raises(InvalidStateError):
        campaigns.add_targets(campaign.campaign_id, targets("c-2"))


# Release rules


def test_pacing_cap_limits_calls_in_flight(callbacks, campaigns):
    customers = [f"c-{i}" for i in range(5)]
    running(campaigns, customers=customers, max_in_flight=2)
    first = step(callbacks, campaigns)[1]
    assert [o.customer_id for o in first] == ["c-0", "c-1"]
    assert step(callbacks, campaigns)[1] == []
    dial(callbacks, campaigns, first[0], Outcome.CONNECTED)
    assert [o.customer_id for o in step(callbacks, campaigns)[1]] == ["c-2"]


def test_kinds_ordered_complaint_voc_promotion(callbacks, campaigns):
    running(campaigns, CampaignKind.VIP_PROMOTION, customers=("promo",))
    running(campaigns, CampaignKind.VOC_TICKET_UPDATE, customers=("voc",))
    running(campaigns, CampaignKind.COMPLAINT_FOLLOW_UP, customers=("complaint",))
    orders = step(callbacks, campaigns, free_agents={"billing": 2})[1]
    assert [o.customer_id for o in orders] == ["complaint", "voc"]


def test_due_callback_takes_agent_first(callbacks, campaigns):
    running(campaigns, customers=("c-campaign",))
    callbacks.create(request("c-callback"))
    released, campaign_orders = step(callbacks, campaigns, free_agents={"billing": 1})
    assert [o.customer_id for o in released] == ["c-callback"]
    assert campaign_orders == []


def test_held_callback_blocks_campaign(callbacks, campaigns):
    running(campaigns, customers=("c-campaign",))
    callbacks.create(request("c-callback"))
    released, campaign_orders = step(callbacks, campaigns, free_agents={"billing": 0})
    assert released == []
    assert campaign_orders == []


def test_waiting_inbound_caller_blocks_campaign(callbacks, campaigns):
    running(campaigns, customers=("c-1",))
    assert step(callbacks, campaigns, waiting={"billing": 1})[1] == []
    assert len(step(callbacks, campaigns, waiting={"billing": 0})[1]) == 1


def test_outside_windows_not_dialed(callbacks, campaigns, clock):
    callbacks.set_calendar("billing", office_hours())
    running(campaigns, customers=("c-1",), end_time=T0 + 48 * HOUR)
    clock.set(T0.replace(hour=19))
    assert step(callbacks, campaigns)[1] == []
    clock.set(T0.replace(hour=8) + 24 * HOUR)
    assert len(step(callbacks, campaigns)[1]) == 1


def test_spare_capacity_bounds_release(db, clock):
    callbacks = make_scheduler(db, clock, cap=3)
    campaigns = CampaignScheduler(callbacks)
    callbacks.create(request("c-callback"))
    running(campaigns, customers=[f"c-{i}" for i in range(5)], max_in_flight=50)
    released, campaign_orders = step(callbacks, campaigns)
    assert len(released) == 1
    assert len(campaign_orders) == 2


def test_dedicated_agent_waits_until_ready(callbacks, campaigns):
    campaign, _ = campaigns.create(campaign_request())
    campaigns.add_targets(
        campaign.campaign_id,
        [CampaignTarget("vip-1", "+14155550101", dedicated_agent_id="agent-7")],
    )
    campaigns.start(campaign.campaign_id)
    assert step(callbacks, campaigns, ready_agents={"agent-1"})[1] == []
    [order] = step(callbacks, campaigns, ready_agents={"agent-7"})[1]
    assert order.target.agent_id == "agent-7"
    assert order.campaign_id == campaign.campaign_id


# Do not call a customer twice


def test_open_callback_skips_target(callbacks, campaigns):
    callbacks.create(request("c-1", queue="sales"))
    campaign = running(campaigns, customers=("c-1",))
    step(callbacks, campaigns, free_agents={"billing": 5, "sales": 0})
    [target] = campaigns.list_targets(campaign.campaign_id)[0]
    assert target.state is CallbackState.DROPPED
    assert "open callback" in target.reason


def test_customer_reached_agent_drops_target(callbacks, campaigns, clock):
    campaign = running(campaigns, customers=("c-1", "c-2"))
    clock.advance(60)
    dropped = campaigns.customer_reached_agent("c-1", clock.now())
    assert [t.customer_id for t in dropped] == ["c-1"]
    assert [o.customer_id for o in step(callbacks, campaigns)[1]] == ["c-2"]
    states = campaigns.summary(campaign.campaign_id).target_states
    assert states["dropped"] == 1


def test_contact_before_start_still_called(callbacks, campaigns, clock):
    running(campaigns, customers=("c-1",), start_time=T0 + HOUR)
    campaigns.customer_reached_agent("c-1", T0 + timedelta(minutes=10))
    clock.advance(3600)
    assert [o.customer_id for o in step(callbacks, campaigns)[1]] == ["c-1"]


def test_connected_in_one_campaign_skipped_in_other(callbacks, campaigns):
    running(campaigns, CampaignKind.COMPLAINT_FOLLOW_UP, customers=("c-1",))
    promotion = running(campaigns, CampaignKind.VIP_PROMOTION, customers=("c-1",))
    [order] = step(callbacks, campaigns)[1]
    assert step(callbacks, campaigns)[1] == []
    dial(callbacks, campaigns, order, Outcome.CONNECTED)
    step(callbacks, campaigns)
    [target] = campaigns.list_targets(promotion.campaign_id)[0]
    assert target.state is CallbackState.DROPPED
    assert "reached an agent" in target.reason


def test_removed_target_not_called(callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1", "c-2"))
    removed = campaigns.remove_target(campaign.campaign_id, "c-1", "opt-out")
    assert removed.state is CallbackState.CANCELLED
    assert [o.customer_id for o in step(callbacks, campaigns)[1]] == ["c-2"]


# The callback machinery, unchanged


def test_attempt_dialed_once(callbacks, campaigns):
    running(campaigns, customers=("c-1",))
    [order] = step(callbacks, campaigns)[1]
    callbacks.start_dialing(order.attempt_id, "gw-1")
    with pytest.raises(LeaseError):
        callbacks.start_dialing(order.attempt_id, "gw-2")


def fail_ladder(callbacks, campaigns, clock, campaign):
    """Dial the campaign's one target until it fails; return its states."""
    states = []
    for _ in range(20):
        clock.advance(3600)
        orders = step(callbacks, campaigns)[1]
        if not orders:
            if campaigns.get(campaign.campaign_id).state is CampaignState.FINISHED:
                break
            continue
        result = dial(callbacks, campaigns, orders[0], Outcome.BUSY)
        states.append(result.callback.state)
    return states


def sms_texts(callbacks):
    return [
        event.payload["text"]
        for event in callbacks.read_events(0, 1000)
        if event.kind == "sms.requested"
    ]


def test_busy_retried_then_sms(callbacks, campaigns, clock):
    kind = CampaignKind.COMPLAINT_FOLLOW_UP
    campaign = running(campaigns, kind, customers=("c-1",))
    states = fail_ladder(callbacks, campaigns, clock, campaign)
    assert states[0] is CallbackState.PENDING
    assert states[-1] is CallbackState.FAILED
    [text] = sms_texts(callbacks)
    assert "complaint" in text
    assert "call you back about your" not in text
    assert f"{campaign.campaign_id}-0000001" in text


def test_failed_promotion_sends_no_sms(callbacks, campaigns, clock):
    campaign = running(campaigns, CampaignKind.VIP_PROMOTION, customers=("c-1",))
    states = fail_ladder(callbacks, campaigns, clock, campaign)
    assert states[-1] is CallbackState.FAILED
    assert sms_texts(callbacks) == []


def test_promotion_sms_text_sent(callbacks, campaigns, clock):
    text = "{campaign}: we missed you; ask for offer {callback_id} {{VIP}}."
    campaign = running(campaigns, customers=("c-1",), sms_text=text)
    fail_ladder(callbacks, campaigns, clock, campaign)
    assert sms_texts(callbacks) == [
        f"vip_promotion December: we missed you; ask for offer "
        f"{campaign.campaign_id}-0000001 {{VIP}}."
    ]


def test_empty_sms_text_sends_none(callbacks, campaigns, clock):
    kind = CampaignKind.VOC_TICKET_UPDATE
    campaign = running(campaigns, kind, customers=("c-1",), sms_text="")
    assert fail_ladder(callbacks, campaigns, clock, campaign)[-1] is (
        CallbackState.FAILED
    )
    assert sms_texts(callbacks) == []


@pytest.mark.parametrize(
    "text", ["{name}", "{}", "{queue.upper}", "{queue:>9}", "{queue", "100% }"]
)
def test_sms_text_invalid_placeholder_rejected(campaigns, text):
    with pytest.raises(ValidationError) as caught:
        campaigns.create(campaign_request(sms_text=text))
    assert caught.value.field == "sms_text"
    assert "{campaign}, {queue}, {callback_id}" in caught.value.fix


def test_sms_text_too_long_rejected(campaigns):
    with pytest.raises(ValidationError) as caught:
        campaigns.create(campaign_request(sms_text="x" * 481))
    assert caught.value.field == "sms_text"


def test_sms_text_stored_and_defaulted(db, clock, callbacks, campaigns):
    custom, _ = campaigns.create(campaign_request(sms_text="Call {queue}"))
    kind = CampaignKind.COMPLAINT_FOLLOW_UP
    default, _ = campaigns.create(campaign_request(kind))
    callbacks.store.close()
    reopened = CampaignScheduler(make_scheduler(db, clock))
    assert reopened.get(custom.campaign_id).sms_text == "Call {queue}"
    assert reopened.get(default.campaign_id).sms_text is None
    assert reopened.get(default.campaign_id).sms_template == DEFAULT_SMS_TEXTS[kind]


def test_create_replay_other_sms_text_rejected(campaigns):
    campaigns.create(campaign_request())
    with pytest.raises(RequestIdReusedError):
        campaigns.create(campaign_request(sms_text="Call us"))


def test_lease_expiry_keeps_place(callbacks, campaigns, clock):
    running(campaigns, customers=("c-1",))
    [order] = step(callbacks, campaigns)[1]
    clock.advance(callbacks.policy.promise.lease_s + 1)
    [again] = step(callbacks, campaigns)[1]
    assert again.customer_id == "c-1"
    assert again.attempt_number == 2
    assert callbacks.get(order.callback_id).attempts == 0


def test_summary_counts_outcomes(callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1", "c-2"))
    first, second = step(callbacks, campaigns)[1]
    dial(callbacks, campaigns, first, Outcome.CONNECTED)
    dial(callbacks, campaigns, second, Outcome.NO_ANSWER)
    summary = campaigns.summary(campaign.campaign_id)
    assert summary.outcomes == {"connected": 1, "no_answer": 1}
    assert summary.target_states == {"completed": 1, "pending": 1}


def test_restart_keeps_campaign_and_targets(db, clock, callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1",))
    callbacks.store.close()
    reopened = CampaignScheduler(make_scheduler(db, clock))
    assert reopened.get(campaign.campaign_id) == campaign
    assert [o.customer_id for o in reopened.due()] == ["c-1"]


def test_rebuild_restores_campaigns(db, clock, campaigns):
    campaign = running(campaigns, customers=("c-1",))
    store = campaigns.store
    assert isinstance(store, SQLiteStore)
    store.rebuild_state()
    assert campaigns.get(campaign.campaign_id) == campaign
    assert len(campaigns.list_targets(campaign.campaign_id)[0]) == 1


def test_callback_request_of_campaign_mode_rejected(callbacks):
    with pytest.raises(ValidationError) as caught:
        callbacks.create(request("c-1", mode=CallbackMode.CAMPAIGN))
    assert caught.value.field == "mode"


def test_customer_callback_not_merged_into_target(callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1",))
    callback = callbacks.create(request("c-1"))
    assert callback.mode is CallbackMode.ASAP
    assert callback.campaign_id is None
    [target] = campaigns.list_targets(campaign.campaign_id)[0]
    assert target.callback_id != callback.callback_id


def test_campaigns_listed_in_pages(campaigns):
    for kind in CampaignKind:
        campaigns.create(campaign_request(kind))
    first, token = campaigns.list(page_size=2)
    rest, last = campaigns.list(page_size=2, page_token=token)
    running_only, _ = campaigns.list(state=CampaignState.RUNNING)
    assert len(first + rest) == 3
    assert last == ""
    assert running_only == []


def test_remove_ended_target_unchanged(callbacks, campaigns):
    campaign = running(campaigns, customers=("c-1",))
    [order] = step(callbacks, campaigns)[1]
    dial(callbacks, campaigns, order, Outcome.CONNECTED)
    removed = campaigns.remove_target(campaign.campaign_id, "c-1", "opt-out")
    assert removed.state is CallbackState.COMPLETED


def test_removed_customer_not_added_again(campaigns):
    campaign, _ = campaigns.create(campaign_request())
    campaigns.add_targets(campaign.campaign_id, targets("c-1"))
    campaigns.remove_target(campaign.campaign_id, "c-1", "opt-out")
    again = campaigns.add_targets(campaign.campaign_id, targets("c-1"))
    assert again.added == 0
    assert again.targets[0].state is CallbackState.CANCELLED
