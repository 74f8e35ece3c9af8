"""Bad input to AdminService, AgentService, ContactService and
PredictionService.

Each bad value is rejected with INVALID_ARGUMENT (or NOT_FOUND) naming the
request's own field, never with INTERNAL, and leaves the server able to
serve the next call. The first tests convert requests without a server;
the others send them to a real `callsure serve`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from serve_support import serving_channel

from callsure.actors.convert import duration_seconds
from callsure.actors.errors import decode_status
from callsure.actors.services.admin import (
    calendar_from_request,
    grade_rules_from_request,
    repeat_rule_from_request,
    retry_policy_from_request,
)
from callsure.actors.services.contacts import (
    arrived_batches,
    contact_event_from_proto,
)
from callsure.engine.exceptions import ValidationError
from callsure.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    callback_pb2,
    callback_pb2_grpc,
    common_pb2,
    contact_pb2,
    contact_pb2_grpc,
    prediction_pb2,
    prediction_pb2_grpc,
)

CALL_TIMEOUT_S = 60.0
# The largest Duration google/protobuf/duration.proto allows, 10,000 years.
MAX_DURATION = duration_pb2.Duration(seconds=315_576_000_000)
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z


def period(name="morning", start="08:00", end="12:00", weekday=1):
    return admin_pb2.CallbackPeriod(
        weekday=weekday, name=name, start_local_time=start, end_local_time=end
    )


def windows(**fields):
    fields.setdefault("time_zone", "Europe/Berlin")
    return admin_pb2.UpdateCallbackWindowsRequest(**fields)


def field_of(call, request) -> str:
    with pytest.raises(ValidationError) as info:
        call(request)
    return info.value.field


# Conversions, without a server.


def test_period_end_before_start_names_its_field():
    request = windows(periods=[period(start="10:00", end="09:00")])
    assert field_of(calendar_from_request, request) == "periods[0].end_local_time"


def test_period_name_twice_on_one_day_rejected():
    request = windows(periods=[period(), period(start="10:00", end="14:00")])
    assert field_of(calendar_from_request, request) == "periods[1].name"


@pytest.mark.parametrize("name", ["   ", "n" * 100_000, "a\nb"])
def test_period_name_blank_long_or_control_rejected(name):
    request = windows(periods=[period(name=name)])
    assert field_of(calendar_from_request, request) == "periods[0].name"


def test_window_queue_with_control_characters_rejected():
    request = windows(queue="q\x00\x1b[31m")
    assert field_of(calendar_from_request, request) == "queue"


def test_unknown_holiday_subdivision_names_subdivision():
    request = windows(holiday_country="DE", holiday_subdivision="ZZ")
    assert field_of(calendar_from_request, request) == "holiday_subdivision"


def test_holiday_subdivision_without_country_rejected():
    request = windows(holiday_subdivision="BY")
    assert field_of(calendar_from_request, request) == "holiday_subdivision"


def retry_rule(**fields):
    fields.setdefault("outcome", callback_pb2.CALL_OUTCOME_BUSY)
    fields.setdefault("max_retries", 2)
    return admin_pb2.RetryRule(**fields)


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (retry_rule(max_retries=-1), "rules[0].max_retries"),
        (retry_rule(), "rules[0].delays"),
        (
            retry_rule(delays=[duration_pb2.Duration(seconds=-60)]),
            "rules[0].delays[0]",
        ),
        (retry_rule(delays=[MAX_DURATION]), "rules[0].delays[0]"),
        (
            retry_rule(delays=[duration_pb2.Duration(seconds=10**15)]),
            "rules[0].delays[0]",
        ),
        (
            retry_rule(outcome=callback_pb2.CALL_OUTCOME_CONNECTED),
            "rules[0].outcome",
        ),
    ],
)
def test_retry_rule_errors_name_request_field(rule, field):
    request = admin_pb2.UpdateRetryPolicyRequest(max_attempts=3, rules=[rule])
    assert field_of(retry_policy_from_request, request) == field


@pytest.mark.parametrize(
    ("threshold", "field"),
    [
        (
            admin_pb2.RepeatCallerThreshold(
                contact_count=0, lookback_period=duration_pb2.Duration(seconds=3600)
            ),
            "thresholds[0].contact_count",
        ),
        (
            admin_pb2.RepeatCallerThreshold(contact_count=2),
            "thresholds[0].lookback_period",
        ),
        (
            admin_pb2.RepeatCallerThreshold(
                contact_count=2, lookback_period=MAX_DURATION
            ),
            "thresholds[0].lookback_period",
        ),
    ],
)
def test_repeat_threshold_errors_name_request_field(threshold, field):
    request = admin_pb2.UpdateRepeatCallerRuleRequest(thresholds=[threshold])
    assert field_of(repeat_rule_from_request, request) == field


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"complaint_window": MAX_DURATION}, "complaint_window"),
        ({"vip_customer_ids": ["a\nb"]}, "vip_customer_ids[0]"),
        ({"complaint_customer_ids": [""]}, "complaint_customer_ids[0]"),
        (
            {
                "priorities": [
                    admin_pb2.GradePriority(grade=common_pb2.CUSTOMER_GRADE_VIP),
                    admin_pb2.GradePriority(grade=common_pb2.CUSTOMER_GRADE_VIP),
                ]
            },
            "priorities[1].grade",
        ),
    ],
)
def test_grade_rule_errors_name_request_field(request_fields, field):
    request = admin_pb2.UpdateGradeRulesRequest(**request_fields)
    assert field_of(grade_rules_from_request, request) == field


@pytest.mark.parametrize(
    "duration",
    [
        duration_pb2.Duration(seconds=10**15),
        duration_pb2.Duration(seconds=60, nanos=-5),
        duration_pb2.Duration(nanos=2_000_000_000),
    ],
)
def test_invalid_duration_rejected(duration):
    with pytest.raises(ValidationError) as info:
        duration_seconds(duration, "slot_duration")
    assert info.value.field == "slot_duration"


@pytest.mark.parametrize(
    "stamp",
    [
        timestamp_pb2.Timestamp(seconds=LAST_SECOND + 1),
        timestamp_pb2.Timestamp(seconds=-62_135_596_801),
        timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=-1),
        timestamp_pb2.Timestamp(seconds=LAST_SECOND),
    ],
)
def test_contact_event_time_out_of_range_rejected(stamp):
    event = contact_pb2.ContactEvent(
        contact_id="c-1", type=contact_pb2.CONTACT_EVENT_TYPE_ARRIVED, event_time=stamp
    )
    with pytest.raises(ValidationError) as info:
        contact_event_from_proto(event, now=datetime(2026, 12, 5, tzinfo=UTC))
    assert info.value.field == "event.event_time"


# A real server.


@pytest.fixture(scope="module")
def channel():
    with serving_channel() as channel:
        yield channel


def violation_fields(error: grpc.RpcError) -> list[str]:
    fields = []
    for detail in decode_status(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields += [v.field for v in bad_request.field_violations]
    return fields


def rejected(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=CALL_TIMEOUT_S)
    return raised.value


def now_stamp(offset_s: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(time.time()) + offset_s)


@pytest.mark.slow
def test_serve_long_repeat_lookback_rejected_contacts_still_served(channel):
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    threshold = admin_pb2.RepeatCallerThreshold(
        contact_count=2, lookback_period=MAX_DURATION
    )
    error = rejected(
        admin.UpdateRepeatCallerRule,
        admin_pb2.UpdateRepeatCallerRuleRequest(thresholds=[threshold]),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == ["thresholds[0].lookback_period"]
    contacts = contact_pb2_grpc.ContactServiceStub(channel)
    event = contact_pb2.ContactEvent(
        contact_id="k-lookback",
        type=contact_pb2.CONTACT_EVENT_TYPE_ARRIVED,
        event_time=now_stamp(),
        customer_id="c-lookback",
    )
    contacts.ReportContactEvent(
        contact_pb2.ReportContactEventRequest(event=event), timeout=CALL_TIMEOUT_S
    )


@pytest.mark.slow
def test_serve_retry_delay_beyond_duration_limit_rejected(channel):
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    rule = retry_rule(delays=[duration_pb2.Duration(seconds=10**15)])
    error = rejected(
        admin.UpdateRetryPolicy,
        admin_pb2.UpdateRetryPolicyRequest(max_attempts=3, rules=[rule]),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == ["rules[0].delays[0]"]


@pytest.mark.slow
def test_serve_update_unknown_agent_not_found(channel):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    request = agent_pb2.UpdateAgentRequest(
        agent=agent_pb2.Agent(name="agents/nobody", group="billing")
    )
    assert rejected(agents.UpdateAgent, request).code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
@pytest.mark.parametrize(
    ("agent", "field"),
    [
        (agent_pb2.Agent(name="agents/a\nb", group="billing"), "agent.name"),
        (agent_pb2.Agent(name="agents/" + "a" * 200, group="billing"), "agent.name"),
        (
            agent_pb2.Agent(name="agents/a-skill", group="billing", skills=["s\x00"]),
            "agent.skills[0]",
        ),
        (
            agent_pb2.Agent(
                name="agents/a-ded", group="billing", dedicated_customer_ids=["d" * 200]
            ),
            "agent.dedicated_customer_ids[0]",
        ),
    ],
)
def test_serve_bad_agent_text_rejected(channel, agent, field):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    request = agent_pb2.UpdateAgentRequest(agent=agent, allow_missing=True)
    error = rejected(agents.UpdateAgent, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == [field]


@pytest.mark.slow
def test_serve_customer_keeps_one_dedicated_agent(channel):
    agents = agent_pb2_grpc.AgentServiceStub(channel)

    def update(name):
        agent = agent_pb2.Agent(
            name=name, group="vip", dedicated_customer_ids=["vip-shared"]
        )
        return agent_pb2.UpdateAgentRequest(agent=agent, allow_missing=True)

    agents.UpdateAgent(update("agents/first"), timeout=CALL_TIMEOUT_S)
    error = rejected(agents.UpdateAgent, update("agents/second"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == ["agent.dedicated_customer_ids[0]"]
    assert "agents/first" in error.details()


@pytest.mark.slow
def test_serve_agent_state_from_far_future_rejected(channel):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    agent = agent_pb2.Agent(name="agents/skewed", group="billing")
    agents.UpdateAgent(
        agent_pb2.UpdateAgentRequest(agent=agent, allow_missing=True),
        timeout=CALL_TIMEOUT_S,
    )
    request = agent_pb2.ReportAgentStateRequest(
        agent="agents/skewed",
        state=agent_pb2.AGENT_STATE_BUSY,
        event_time=timestamp_pb2.Timestamp(seconds=LAST_SECOND),
    )
    error = rejected(agents.ReportAgentState, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    ready = agent_pb2.ReportAgentStateRequest(
        agent="agents/skewed", state=agent_pb2.AGENT_STATE_READY
    )
    reply = agents.ReportAgentState(ready, timeout=CALL_TIMEOUT_S)
    assert reply.agent.state == agent_pb2.AGENT_STATE_READY


@pytest.mark.slow
@pytest.mark.parametrize(
    "stamp",
    [
        timestamp_pb2.Timestamp(seconds=LAST_SECOND + 1),
        timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=-1),
        # 0001-01-01T00:00:00Z: older than the day a CTI backlog may span.
        timestamp_pb2.Timestamp(seconds=-62_135_596_800),
    ],
)
def test_serve_agent_state_time_out_of_range_rejected(channel, stamp):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    request = agent_pb2.ReportAgentStateRequest(
        agent="agents/any", state=agent_pb2.AGENT_STATE_READY, event_time=stamp
    )
    error = rejected(agents.ReportAgentState, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == ["event_time"]


@pytest.mark.slow
@pytest.mark.parametrize("token", ["zzz-garbage", "callbacks/0001"])
def test_serve_foreign_agent_page_token_rejected(channel, token):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    error = rejected(agents.ListAgents, agent_pb2.ListAgentsRequest(page_token=token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == ["page_token"]


def capacity_request(end_offset_s: int, slot_s: int, start_offset_s: int = 0):
    start = int(time.time()) + start_offset_s
    return prediction_pb2.GetCapacityRequest(
        queue="billing",
        interval=common_pb2.TimeInterval(
            start_time=timestamp_pb2.Timestamp(seconds=start),
            end_time=timestamp_pb2.Timestamp(seconds=start + end_offset_s),
        ),
        slot_duration=duration_pb2.Duration(seconds=slot_s),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (capacity_request(7 * 86400, 60), "slot_duration"),
        (capacity_request(3600, 10**15), "slot_duration"),
        (
            prediction_pb2.GetCapacityRequest(
                queue="billing",
                interval=common_pb2.TimeInterval(
                    start_time=timestamp_pb2.Timestamp(seconds=LAST_SECOND - 3600),
                    end_time=timestamp_pb2.Timestamp(seconds=LAST_SECOND),
                ),
            ),
            "interval.end_time",
        ),
    ],
)
def test_serve_capacity_request_too_big_rejected(channel, request_, field):
    prediction = prediction_pb2_grpc.PredictionServiceStub(channel)
    error = rejected(prediction.GetCapacity, request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == [field]


@pytest.mark.slow
def test_serve_callback_entry_time_out_of_range_rejected(channel):
    callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
    message = callback_pb2.Callback(
        customer_id="c-entry",
        phone_number="+14155550100",
        queue="billing",
        entry_time=timestamp_pb2.Timestamp(seconds=LAST_SECOND + 1),
    )
    error = rejected(
        callbacks.CreateCallback,
        callback_pb2.CreateCallbackRequest(callback=message, request_id="r-entry"),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == ["callback.entry_time"]


def error_info(error: grpc.RpcError, reason: str) -> error_details_pb2.ErrorInfo:
    for detail in decode_status(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.reason == reason:
                return info
    raise AssertionError(f"no ErrorInfo {reason} in {decode_status(error)}")


@pytest.mark.slow
def test_serve_stopped_stream_reports_superseded(channel):
    callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
    message = callback_pb2.Callback(
        customer_id="c-stream", phone_number="+14155550100", queue="billing"
    )
    created = callbacks.CreateCallback(
        callback_pb2.CreateCallbackRequest(callback=message, request_id="r-stream"),
        timeout=CALL_TIMEOUT_S,
    ).callback
    answered = contact_pb2.ContactEvent(
        contact_id="k-stream",
        type=contact_pb2.CONTACT_EVENT_TYPE_ANSWERED,
        event_time=timestamp_pb2.Timestamp(seconds=created.create_time.seconds + 1),
        customer_id="c-stream",
        agent="agents/any",
    )
    invalid = contact_pb2.ContactEvent(
        type=contact_pb2.CONTACT_EVENT_TYPE_ARRIVED, event_time=now_stamp()
    )
    requests = [
        contact_pb2.StreamContactEventsRequest(event=e) for e in (answered, invalid)
    ]
    contacts = contact_pb2_grpc.ContactServiceStub(channel)
    error = rejected(contacts.StreamContactEvents, iter(requests))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(error) == ["event[1].contact_id"]
    info = error_info(error, "CONTACT_STREAM_STOPPED")
    assert info.metadata["accepted_count"] == "1"
    assert info.metadata["superseded_callbacks"] == created.name


async def collect_batches(requests, size):
    batches = []
    async for batch in arrived_batches(requests, size):
        batches.append(batch)
    return batches


async def numbers(count, fail_after=None):
    for number in range(count):
        if number == fail_after:
            raise RuntimeError("stream broken")
        yield number


def test_arrived_batches_group_fast_sender():
    batches = asyncio.run(collect_batches(numbers(600), 256))
    assert [n for batch in batches for n in batch] == list(range(600))
    assert max(len(batch) for batch in batches) == 256
    assert len(batches) < 600


def test_arrived_batches_yield_before_break():
    received = []

    async def scenario():
        async for batch in arrived_batches(numbers(10, fail_after=3), 256):
            received.extend(batch)

    with pytest.raises(RuntimeError, match="stream broken"):
        asyncio.run(scenario())
    assert received == [0, 1, 2]


def test_arrived_batches_empty_stream():
    assert asyncio.run(collect_batches(numbers(0), 256)) == []
