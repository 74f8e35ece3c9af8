"""AdminService's Get methods: the settings in force, read back.

Before any update each Get returns the configured defaults. After an
update it returns what the update accepted, in the update's own form, so
the response parses as the update request. The settings are stored, so a
server started again on the same store returns them too. The first tests
convert without a server; the others run one `callsure serve` and restart
it once with SIGTERM.
"""

from __future__ import annotations

import json

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import duration_pb2
from serve_support import RestartableServer

from callsure.actors.cli import cli
from callsure.actors.services.admin import (
    calendar_from_request,
    calendar_to_response,
    capacity_limits_to_response,
    grade_rules_from_request,
    grade_rules_to_response,
    repeat_rule_from_request,
    repeat_rule_to_response,
    retry_policy_from_request,
    retry_policy_to_response,
)
from callsure.engine.policy import CapacityLimits
from callsure.v1 import admin_pb2, admin_pb2_grpc, callback_pb2, common_pb2

CALL_TIMEOUT_S = 60.0
DAY_S = 86400


def seconds(value: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=value, nanos=nanos)


def period(weekday, name, start, end):
    return admin_pb2.CallbackPeriod(
        weekday=weekday, name=name, start_local_time=start, end_local_time=end
    )


# Requests whose Get response must equal them field for field: periods by
# weekday, ids sorted, every grade listed and every default sent explicitly.

BILLING_WINDOWS = admin_pb2.UpdateCallbackWindowsRequest(
    queue="billing",
    time_zone="America/New_York",
    periods=[
        period(admin_pb2.WEEKDAY_MONDAY, "morning", "08:30", "12:00"),
        period(admin_pb2.WEEKDAY_MONDAY, "evening", "17:15", "00:00"),
        period(admin_pb2.WEEKDAY_WEDNESDAY, "all-day", "00:00", "00:00"),
        period(admin_pb2.WEEKDAY_SATURDAY, "late", "22:00", "23:59"),
    ],
    holiday_country="US",
    holiday_subdivision="NY",
    closed_dates=["2026-12-24", "2026-12-31"],
)
DEFAULT_WINDOWS = admin_pb2.UpdateCallbackWindowsRequest(
    time_zone="Europe/Berlin",
    periods=[
        period(admin_pb2.WEEKDAY_TUESDAY, "day", "09:00", "18:00"),
        period(admin_pb2.WEEKDAY_FRIDAY, "day", "09:00", "13:00"),
    ],
    holiday_country="DE",
    closed_dates=["2026-12-28"],
)
RETRY_POLICY = admin_pb2.UpdateRetryPolicyRequest(
    max_attempts=7,
    rules=[
        admin_pb2.RetryRule(
            outcome=callback_pb2.CALL_OUTCOME_NO_ANSWER,
            max_retries=4,
            delays=[seconds(90), seconds(1, 500_000_000), seconds(7 * DAY_S)],
        ),
        admin_pb2.RetryRule(
            outcome=callback_pb2.CALL_OUTCOME_BUSY,
            max_retries=1,
            delays=[seconds(0, 1000)],
        ),
        admin_pb2.RetryRule(outcome=callback_pb2.CALL_OUTCOME_MACHINE, max_retries=0),
    ],
)
REPEAT_RULE = admin_pb2.UpdateRepeatCallerRuleRequest(
    thresholds=[
        admin_pb2.RepeatCallerThreshold(contact_count=3, lookback_period=seconds(3600)),
        admin_pb2.RepeatCallerThreshold(
            contact_count=9, lookback_period=seconds(366 * DAY_S)
        ),
        admin_pb2.RepeatCallerThreshold(
            contact_count=2, lookback_period=seconds(7, 250_000_000)
        ),
    ],
    priority_boost=-3,
    offer_callback=False,
)
GRADE_RULES = admin_pb2.UpdateGradeRulesRequest(
    vip_customer_ids=["crm-001", "crm-007"],
    vip_attributes=[
        admin_pb2.AttributeMatch(attribute="segment", values=["platinum", "gold"]),
        admin_pb2.AttributeMatch(attribute="board", values=["yes"]),
    ],
    complaint_customer_ids=["crm-100"],
    complaint_attributes=[
        admin_pb2.AttributeMatch(attribute="escalated", values=["true"])
    ],
    complaint_threshold=3,
    complaint_window=seconds(14 * DAY_S + 1),
    priorities=[
        admin_pb2.GradePriority(grade=common_pb2.CUSTOMER_GRADE_VIP, priority=50),
        admin_pb2.GradePriority(grade=common_pb2.CUSTOMER_GRADE_COMPLAINT, priority=7),
        admin_pb2.GradePriority(grade=common_pb2.CUSTOMER_GRADE_REGULAR, priority=-1),
    ],
)
CAPACITY_LIMITS = admin_pb2.UpdateCapacityLimitsRequest(
    interval=seconds(1800),
    limits=[
        admin_pb2.CapacityLimit(queue="sales", max_callbacks_per_interval=12),
        admin_pb2.CapacityLimit(queue="billing", max_callbacks_per_interval=0),
    ],
)


def as_update(response, update_type):
    """Parse a Get response as its Update request, as a client sending it back.

    Fields only the response has, such as default_calendar, are dropped.
    """
    request = update_type.FromString(response.SerializeToString())
    request.DiscardUnknownFields()
    return request


# Conversions, without a server.


def test_calendar_converts_back_to_request():
    response = calendar_to_response(calendar_from_request(BILLING_WINDOWS), "billing")
    assert as_update(response, admin_pb2.UpdateCallbackWindowsRequest) == (
        BILLING_WINDOWS
    )
    assert not response.default_calendar


def test_default_calendar_converts_with_empty_queue():
    response = calendar_to_response(calendar_from_request(DEFAULT_WINDOWS), "*")
    assert as_update(response, admin_pb2.UpdateCallbackWindowsRequest) == (
        DEFAULT_WINDOWS
    )
    assert response.default_calendar


def test_inherited_calendar_names_requested_queue():
    calendar = calendar_from_request(DEFAULT_WINDOWS)
    response = calendar_to_response(calendar, "*", "sales")
    expected = admin_pb2.UpdateCallbackWindowsRequest()
    expected.CopyFrom(DEFAULT_WINDOWS)
    expected.queue = "sales"
    assert response.queue == "sales"
    assert response.default_calendar
    assert as_update(response, admin_pb2.UpdateCallbackWindowsRequest) == expected


def test_calendar_periods_come_back_by_weekday():
    request = admin_pb2.UpdateCallbackWindowsRequest(
        time_zone="UTC",
        periods=[
            period(admin_pb2.WEEKDAY_SUNDAY, "b", "10:00", "11:00"),
            period(admin_pb2.WEEKDAY_MONDAY, "a", "10:00", "11:00"),
            period(admin_pb2.WEEKDAY_SUNDAY, "a", "08:00", "09:00"),
        ],
        closed_dates=["2027-01-02", "2026-01-02", "2027-01-02"],
    )
    response = calendar_to_response(calendar_from_request(request), "*")
    assert [(p.weekday, p.name) for p in response.periods] == [
        (admin_pb2.WEEKDAY_MONDAY, "a"),
        (admin_pb2.WEEKDAY_SUNDAY, "b"),
        (admin_pb2.WEEKDAY_SUNDAY, "a"),
    ]
    assert list(response.closed_dates) == ["2026-01-02", "2027-01-02"]


def test_retry_policy_converts_back_to_request():
    response = retry_policy_to_response(retry_policy_from_request(RETRY_POLICY))
    assert as_update(response, admin_pb2.UpdateRetryPolicyRequest) == RETRY_POLICY


def test_repeat_rule_converts_back_to_request():
    response = repeat_rule_to_response(repeat_rule_from_request(REPEAT_RULE))
    assert as_update(response, admin_pb2.UpdateRepeatCallerRuleRequest) == (REPEAT_RULE)


def test_grade_rules_convert_back_to_request():
    response = grade_rules_to_response(grade_rules_from_request(GRADE_RULES))
    assert as_update(response, admin_pb2.UpdateGradeRulesRequest) == GRADE_RULES


def test_grade_rules_defaults_filled_in():
    rules = grade_rules_from_request(admin_pb2.UpdateGradeRulesRequest())
    response = grade_rules_to_response(rules)
    assert response.complaint_threshold == 1
    assert response.complaint_window == seconds(30 * DAY_S)
    assert [(p.grade, p.priority) for p in response.priorities] == [
        (common_pb2.CUSTOMER_GRADE_VIP, 0),
        (common_pb2.CUSTOMER_GRADE_COMPLAINT, 0),
        (common_pb2.CUSTOMER_GRADE_REGULAR, 0),
    ]


def test_capacity_limits_filtered_by_queue():
    capacity = CapacityLimits(900.0, {"sales": 3, "billing": 0})
    every = capacity_limits_to_response(capacity)
    billing = capacity_limits_to_response(capacity, "billing")
    unknown = capacity_limits_to_response(capacity, "nowhere")
    assert [limit.queue for limit in every.limits] == ["sales", "billing"]
    assert [limit.queue for limit in billing.limits] == ["billing"]
    assert list(unknown.limits) == []
    assert unknown.interval == seconds(900)


def test_cli_queue_of_setting_without_queue_rejected():
    # Port 1 on loopback: the option is rejected before a call is made.
    result = CliRunner().invoke(
        cli,
        ["client", "--address", "127.0.0.1:1", "admin", "get", "retry-policy"]
        + ["--queue", "billing"],
    )
    assert result.exit_code == 2
    assert "--queue applies to callback-windows" in result.output


# A real server.


@pytest.fixture(scope="module")
def served():
    served = RestartableServer(admin=admin_pb2_grpc.AdminServiceStub)
    try:
        yield served
    finally:
        served.close()


def call(served, method: str, request):
    return getattr(served.admin, method)(request, timeout=CALL_TIMEOUT_S)


def get_windows(served, queue=""):
    request = admin_pb2.GetCallbackWindowsRequest(queue=queue)
    return call(served, "GetCallbackWindows", request)


def get_retry(served):
    return call(served, "GetRetryPolicy", admin_pb2.GetRetryPolicyRequest())


def get_repeat(served):
    return call(served, "GetRepeatCallerRule", admin_pb2.GetRepeatCallerRuleRequest())


def get_grades(served):
    return call(served, "GetGradeRules", admin_pb2.GetGradeRulesRequest())


def get_capacity(served, queue=""):
    request = admin_pb2.GetCapacityLimitsRequest(queue=queue)
    return call(served, "GetCapacityLimits", request)


# The defaults tests run first, on the fresh store.


@pytest.mark.slow
def test_serve_default_calendar_always_open(served):
    response = get_windows(served)
    assert response.queue == ""
    assert response.default_calendar
    assert response.time_zone == "UTC"
    assert [p.weekday for p in response.periods] == list(range(1, 8))
    assert all(
        (p.name, p.start_local_time, p.end_local_time) == ("day", "00:00", "00:00")
        for p in response.periods
    )
    assert response.holiday_country == ""
    assert list(response.closed_dates) == []


@pytest.mark.slow
def test_serve_default_retry_policy(served):
    response = get_retry(served)
    rules = {rule.outcome: rule for rule in response.rules}
    busy = rules[callback_pb2.CALL_OUTCOME_BUSY]
    assert response.max_attempts == 5
    assert busy.max_retries == 3
    assert list(busy.delays) == [seconds(120), seconds(300), seconds(600)]
    assert rules[callback_pb2.CALL_OUTCOME_FAX].max_retries == 0
    assert callback_pb2.CALL_OUTCOME_CONNECTED not in rules


@pytest.mark.slow
def test_serve_default_repeat_rule(served):
    response = get_repeat(served)
    assert [(t.contact_count, t.lookback_period) for t in response.thresholds] == [
        (4, seconds(DAY_S)),
        (5, seconds(3 * DAY_S)),
    ]
    assert response.priority_boost == 5
    assert response.offer_callback


@pytest.mark.slow
def test_serve_default_grade_rules(served):
    response = get_grades(served)
    assert list(response.vip_customer_ids) == []
    assert response.complaint_threshold == 1
    assert response.complaint_window == seconds(30 * DAY_S)
    assert [(p.grade, p.priority) for p in response.priorities] == [
        (common_pb2.CUSTOMER_GRADE_VIP, 20),
        (common_pb2.CUSTOMER_GRADE_COMPLAINT, 10),
        (common_pb2.CUSTOMER_GRADE_REGULAR, 0),
    ]


@pytest.mark.slow
def test_serve_default_capacity_limits(served):
    response = get_capacity(served)
    assert response.interval == seconds(900)
    assert list(response.limits) == []


# Updates, then Gets.


@pytest.mark.slow
def test_serve_callback_windows_round_trip(served):
    call(served, "UpdateCallbackWindows", BILLING_WINDOWS)
    call(served, "UpdateCallbackWindows", DEFAULT_WINDOWS)
    billing = get_windows(served, "billing")
    default = get_windows(served)
    assert as_update(billing, admin_pb2.UpdateCallbackWindowsRequest) == (
        BILLING_WINDOWS
    )
    assert not billing.default_calendar
    assert as_update(default, admin_pb2.UpdateCallbackWindowsRequest) == (
        DEFAULT_WINDOWS
    )
    assert default.default_calendar


@pytest.mark.slow
def test_serve_queue_without_calendar_gets_default(served):
    response = get_windows(served, "never-seen-queue")
    expected = admin_pb2.UpdateCallbackWindowsRequest()
    expected.CopyFrom(DEFAULT_WINDOWS)
    expected.queue = "never-seen-queue"
    assert response.default_calendar
    assert response.queue == "never-seen-queue"
    assert as_update(response, admin_pb2.UpdateCallbackWindowsRequest) == expected


@pytest.mark.slow
def test_serve_star_queue_is_default_calendar(served):
    assert get_windows(served, "*") == get_windows(served)


@pytest.mark.slow
def test_serve_get_windows_long_queue_rejected(served):
    with pytest.raises(grpc.RpcError) as raised:
        get_windows(served, "q" * 100_000)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.slow
def test_serve_retry_policy_round_trip(served):
    call(served, "UpdateRetryPolicy", RETRY_POLICY)
    response = get_retry(served)
    assert as_update(response, admin_pb2.UpdateRetryPolicyRequest) == RETRY_POLICY


@pytest.mark.slow
def test_serve_repeat_rule_round_trip(served):
    call(served, "UpdateRepeatCallerRule", REPEAT_RULE)
    response = get_repeat(served)
    assert as_update(response, admin_pb2.UpdateRepeatCallerRuleRequest) == (REPEAT_RULE)


@pytest.mark.slow
def test_serve_grade_rules_round_trip(served):
    call(served, "UpdateGradeRules", GRADE_RULES)
    response = get_grades(served)
    assert as_update(response, admin_pb2.UpdateGradeRulesRequest) == GRADE_RULES


@pytest.mark.slow
def test_serve_capacity_limits_round_trip(served):
    call(served, "UpdateCapacityLimits", CAPACITY_LIMITS)
    response = get_capacity(served)
    assert as_update(response, admin_pb2.UpdateCapacityLimitsRequest) == (
        CAPACITY_LIMITS
    )


@pytest.mark.slow
def test_serve_capacity_limit_of_one_queue(served):
    billing = get_capacity(served, "billing")
    unknown = get_capacity(served, "never-seen-queue")
    assert list(billing.limits) == [
        admin_pb2.CapacityLimit(queue="billing", max_callbacks_per_interval=0)
    ]
    assert billing.interval == seconds(1800)
    assert list(unknown.limits) == []
    assert unknown.interval == seconds(1800)


@pytest.mark.slow
def test_cli_admin_get_prints_zero_fields(served):
    result = CliRunner().invoke(
        cli,
        ["client", "--address", served.process.address, "admin", "get"]
        + ["capacity-limits", "--queue", "billing"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "interval": "1800s",
        "limits": [{"queue": "billing", "max_callbacks_per_interval": 0}],
    }


@pytest.mark.slow
def test_cli_inherited_windows_sent_back_keep_default(served, tmp_path):
    # A queue without windows of its own prints the default calendar. Sent
    # back, that output gives the queue its own copy and keeps the default.
    client = ["client", "--address", served.process.address, "admin"]
    runner = CliRunner()
    got = runner.invoke(cli, client + ["get", "callback-windows", "--queue", "sales"])
    path = tmp_path / "rt.json"
    path.write_text(got.output)
    updated = runner.invoke(cli, client + ["update", "callback-windows", str(path)])
    sales = get_windows(served, "sales")
    default = get_windows(served)
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["queue"] == "sales"
    assert json.loads(got.output)["default_calendar"] is True
    assert updated.exit_code == 0, updated.output
    assert not sales.default_calendar
    assert sales.time_zone == DEFAULT_WINDOWS.time_zone
    assert default.default_calendar
    assert as_update(default, admin_pb2.UpdateCallbackWindowsRequest) == (
        DEFAULT_WINDOWS
    )


@pytest.mark.slow
def test_cli_default_windows_sent_back_stay_default(served, tmp_path):
    client = ["client", "--address", served.process.address, "admin"]
    runner = CliRunner()
    got = runner.invoke(cli, client + ["get", "callback-windows"])
    path = tmp_path / "default.json"
    path.write_text(got.output)
    updated = runner.invoke(cli, client + ["update", "callback-windows", str(path)])
    default = get_windows(served, "never-seen-queue")
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["queue"] == ""
    assert updated.exit_code == 0, updated.output
    assert default.default_calendar
    assert default.time_zone == DEFAULT_WINDOWS.time_zone


# Last: the restart, after every update above.


@pytest.mark.slow
def test_serve_settings_survive_sigterm_restart(served):
    status = served.restart()
    billing = get_windows(served, "billing")
    default = get_windows(served)
    windows_type = admin_pb2.UpdateCallbackWindowsRequest
    assert status == 0
    assert as_update(billing, windows_type) == BILLING_WINDOWS
    assert not billing.default_calendar
    assert as_update(default, windows_type) == DEFAULT_WINDOWS
    assert default.default_calendar
    retry = as_update(get_retry(served), admin_pb2.UpdateRetryPolicyRequest)
    assert retry == RETRY_POLICY
    repeat = as_update(get_repeat(served), admin_pb2.UpdateRepeatCallerRuleRequest)
    assert repeat == REPEAT_RULE
    grades = as_update(get_grades(served), admin_pb2.UpdateGradeRulesRequest)
    assert grades == GRADE_RULES
    capacity = as_update(get_capacity(served), admin_pb2.UpdateCapacityLimitsRequest)
    assert capacity == CAPACITY_LIMITS
