"""AdminService: callback windows, retry policy, customer rules, capacity.

Each update is converted into the engine's policy object, whose checks
name the invalid field, and stored by the coordinator, which journals it.
Customer rules also go to every customer shard, because the shards grade
customers.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, time

from callsure.actors.convert import OUTCOME_FROM_PROTO, duration_seconds
from callsure.actors.errors import translate_errors
from callsure.engine.customers import GradeRules, RepeatCallerRule
from callsure.engine.exceptions import ValidationError
from callsure.engine.policy import CapacityLimits, RetryPolicy, RetryRule
from callsure.engine.windows import CallbackCalendar, Period
from callsure.v1 import admin_pb2, admin_pb2_grpc, common_pb2

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0
GRADE_NAMES = {
    common_pb2.CUSTOMER_GRADE_REGULAR: "regular",
    common_pb2.CUSTOMER_GRADE_VIP: "vip",
    common_pb2.CUSTOMER_GRADE_COMPLAINT: "complaint",
}


def _local_time(value: str, field: str) -> time:
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or len(value) != 5:
        raise ValidationError(field, value, "send a local time HH:MM such as 08:30")
    return parsed


def calendar_from_request(request) -> CallbackCalendar:
    """Build a ``CallbackCalendar`` from an UpdateCallbackWindowsRequest."""
    weekly: dict[int, list[Period]] = {}
    for index, period in enumerate(request.periods):
        field = f"periods[{index}]"
        if not admin_pb2.WEEKDAY_MONDAY <= period.weekday <= admin_pb2.WEEKDAY_SUNDAY:
            raise ValidationError(f"{field}.weekday", period.weekday, "send a Weekday")
        if not period.name:
            raise ValidationError(f"{field}.name", "", "send a name such as morning")
        weekly.setdefault(period.weekday - 1, []).append(
            Period(
                period.name,
                _local_time(period.start_local_time, f"{field}.start_local_time"),
                _local_time(period.end_local_time, f"{field}.end_local_time"),
            )
        )
    closed = set()
    for index, value in enumerate(request.closed_dates):
        try:
            closed.add(date.fromisoformat(value))
        except ValueError:
            raise ValidationError(
                f"closed_dates[{index}]", value, "send a date YYYY-MM-DD"
            ) from None
    if not request.time_zone:
        raise ValidationError(
            "time_zone", "", "send an IANA zone such as Europe/Berlin"
        )
    return CallbackCalendar(
        time_zone=request.time_zone,
        weekly={day: tuple(periods) for day, periods in weekly.items()},
        holiday_country=request.holiday_country or None,
        holiday_subdivision=request.holiday_subdivision or None,
        extra_holidays=frozenset(closed),
    )


def retry_policy_from_request(request) -> RetryPolicy:
    rules = {}
    for index, rule in enumerate(request.rules):
        if rule.outcome not in OUTCOME_FROM_PROTO:
            raise ValidationError(
                f"rules[{index}].outcome", rule.outcome, "send a CallOutcome"
            )
        outcome = OUTCOME_FROM_PROTO[rule.outcome]
        if outcome in rules:
            raise ValidationError(
                f"rules[{index}].outcome", outcome.value, "send one rule per outcome"
            )
        rules[outcome] = RetryRule(
            rule.max_retries, tuple(duration_seconds(d) for d in rule.delays)
        )
    return RetryPolicy(rules=rules, max_attempts=request.max_attempts)


def grade_rules_from_request(request) -> GradeRules:
    priorities = {"vip": 0, "complaint": 0, "regular": 0}
    for index, item in enumerate(request.priorities):
        if item.grade not in GRADE_NAMES:
            raise ValidationError(
                f"priorities[{index}].grade", item.grade, "send a CustomerGrade"
            )
        priorities[GRADE_NAMES[item.grade]] = item.priority
    window_days = 30.0
    if request.HasField("complaint_window"):
        window_days = duration_seconds(request.complaint_window) / SECONDS_PER_DAY
    return GradeRules(
        vip_ids=frozenset(request.vip_customer_ids),
        vip_attributes={m.attribute: tuple(m.values) for m in request.vip_attributes},
        complaint_ids=frozenset(request.complaint_customer_ids),
        complaint_attributes={
            m.attribute: tuple(m.values) for m in request.complaint_attributes
        },
        complaint_threshold=request.complaint_threshold or 1,
        complaint_window_days=window_days,
        priorities=priorities,
    )


def repeat_rule_from_request(request) -> RepeatCallerRule:
    if not request.thresholds:
        raise ValidationError("thresholds", [], "send at least one threshold")
    return RepeatCallerRule(
        thresholds=tuple(
            (t.contact_count, duration_seconds(t.lookback_period) / SECONDS_PER_DAY)
            for t in request.thresholds
        ),
        priority_boost=request.priority_boost,
        offer_callback=request.offer_callback,
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Store operator settings through the coordinator."""

    def __init__(self, actors):
        self._actors = actors
        self._coordinator = actors.coordinator

    async def UpdateCallbackWindows(self, request, context):
        async with translate_errors(context, "UpdateCallbackWindows"):
            calendar = calendar_from_request(request)
            queue = request.queue or "*"
            await self._coordinator.set_calendar.remote(queue, calendar)
            logger.info("callback windows of %s replaced", queue)
            return admin_pb2.UpdateCallbackWindowsResponse(
                period_count=len(request.periods)
            )

    async def UpdateRetryPolicy(self, request, context):
        async with translate_errors(context, "UpdateRetryPolicy"):
            policy = retry_policy_from_request(request)
            await self._coordinator.set_retry_policy.remote(policy)
            return admin_pb2.UpdateRetryPolicyResponse(max_attempts=policy.max_attempts)

    async def UpdateRepeatCallerRule(self, request, context):
        async with translate_errors(context, "UpdateRepeatCallerRule"):
            rule = repeat_rule_from_request(request)
            await self._coordinator.set_repeat_caller_rule.remote(rule)
            await asyncio.gather(
                *(shard.set_repeat_rule.remote(rule) for shard in self._actors.shards)
            )
            return admin_pb2.UpdateRepeatCallerRuleResponse(
                threshold_count=len(rule.thresholds)
            )

    async def UpdateGradeRules(self, request, context):
        async with translate_errors(context, "UpdateGradeRules"):
            rules = grade_rules_from_request(request)
            await self._coordinator.set_grade_rules.remote(rules)
            await asyncio.gather(
                *(shard.set_rules.remote(rules) for shard in self._actors.shards)
            )
            return admin_pb2.UpdateGradeRulesResponse(
                named_customer_count=len(rules.vip_ids | rules.complaint_ids)
            )

    async def UpdateCapacityLimits(self, request, context):
        async with translate_errors(context, "UpdateCapacityLimits"):
            interval_s = 900.0
            if request.HasField("interval"):
                interval_s = duration_seconds(request.interval)
            limits = {}
            for index, limit in enumerate(request.limits):
                if not limit.queue:
                    raise ValidationError(f"limits[{index}].queue", "", "send a queue")
                limits[limit.queue] = limit.max_callbacks_per_interval
            capacity = CapacityLimits(interval_s=interval_s, max_per_interval=limits)
            await self._coordinator.set_capacity_limits.remote(capacity)
            return admin_pb2.UpdateCapacityLimitsResponse(limit_count=len(limits))
