"""AdminService: callback windows, retry policy, customer rules, capacity.

Each update is converted into the engine's policy object, whose checks
name the invalid field, and stored by the coordinator, which journals it.
Customer rules also go to every customer shard, because the shards grade
customers. Each get reads the policy object in force from the coordinator
and converts it back into the fields of the update request, so what an
update accepted comes back in the same form.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import date, time

from callsure.actors.convert import (
    GRADE_TO_PROTO,
    OUTCOME_FROM_PROTO,
    OUTCOME_TO_PROTO,
    duration_seconds,
    to_duration,
)
from callsure.actors.errors import translate_errors
from callsure.engine.callbacks import MAX_ID_LENGTH, MAX_QUEUE_LENGTH, check_length
from callsure.engine.customers import GradeRules, RepeatCallerRule
from callsure.engine.exceptions import ValidationError
from callsure.engine.policy import CapacityLimits, RetryPolicy, RetryRule
from callsure.engine.windows import CallbackCalendar, Period
from callsure.v1 import admin_pb2, admin_pb2_grpc, callback_pb2, common_pb2

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0
# Customers' contact history is kept for the longest lookback. A lookback
# of thousands of years starts before the year 1, which no date can hold,
# and a year covers every repeat-caller and complaint rule.
MAX_LOOKBACK_S = 366 * SECONDS_PER_DAY
# Promises expire 4 hours after their time by default, so a week bounds
# every useful retry delay and keeps retry times far from the last date.
MAX_RETRY_DELAY_S = 7 * SECONDS_PER_DAY
MAX_PERIOD_NAME_LENGTH = 64
# Dates with periods of their own per calendar. NOTE: a chosen bound, not a
# measured one. It keeps the stored calendar, which every restart reads
# back, small and still covers almost three years of days set one by one.
MAX_DATE_COUNT = 1000
# Periods of one weekday or one date, which must not overlap: one per
# quarter hour. Checked before the periods are compared with one another,
# because that comparison grows with the square of their number.
MAX_PERIODS_PER_DAY = 96
NEVER_RETRIED = frozenset(
    {callback_pb2.CALL_OUTCOME_CONNECTED, callback_pb2.CALL_OUTCOME_NOT_DIALED}
)
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
    if parsed is None or len(value) != 5 or value[2] != ":":
        raise ValidationError(field, value, "send a local time HH:MM such as 08:30")
    return parsed


def _lookback_seconds(duration, field: str) -> float:
    seconds = duration_seconds(duration, field)
    if not 0 < seconds <= MAX_LOOKBACK_S:
        raise ValidationError(
            field, f"{seconds:g}s", "send a positive duration of at most 366 days"
        )
    return seconds


def _period_from_message(period, field: str) -> Period:
    """Check a CallbackPeriod or a DatePeriod, which share the name and
    local time fields, and convert it."""
    if not period.name.strip():
        raise ValidationError(
            f"{field}.name", period.name, "send a name such as morning"
        )
    check_length(f"{field}.name", period.name, MAX_PERIOD_NAME_LENGTH)
    start = _local_time(period.start_local_time, f"{field}.start_local_time")
    end = _local_time(period.end_local_time, f"{field}.end_local_time")
    if end != time(0) and end <= start:
        raise ValidationError(
            f"{field}.end_local_time",
            period.end_local_time,
            f"send a time after {period.start_local_time} (00:00 means end of day)",
        )
    return Period(period.name, start, end)


def _queue_name(value: str, field: str) -> str:
    check_length(field, value, MAX_QUEUE_LENGTH)
    return value


def _check_subdivision(country: str, subdivision: str) -> None:
    """Name holiday_subdivision, not holiday_country, when only it is unknown."""
    check_length("holiday_subdivision", subdivision, MAX_ID_LENGTH)
    try:
        CallbackCalendar(holiday_country=country)
    except ValidationError:
        return  # the calendar's own check names holiday_country
    try:
        CallbackCalendar(holiday_country=country, holiday_subdivision=subdivision)
    except ValidationError:
        raise ValidationError(
            "holiday_subdivision",
            subdivision,
            f"send a subdivision of {country} that the holidays package knows",
        ) from None


def _end_minute(period: Period) -> int:
    if period.end == time(0):
        return 24 * 60
    return period.end.hour * 60 + period.end.minute


def _check_no_overlap(periods: list[Period], field: str, day: str) -> None:
    # Overlapping periods of one day are rejected as a likely mistake in the
    # times, although the engine would serve them: customers choosing either
    # period would compete for the same slots. Calendars stored before this
    # check may still contain overlapping weekday periods, and they still load.
    by_start = sorted(periods, key=lambda period: period.start)
    for earlier, later in itertools.pairwise(by_start):
        if later.start.hour * 60 + later.start.minute < _end_minute(earlier):
            raise ValidationError(
                field,
                f"{earlier.name} {earlier.start:%H:%M}-{earlier.end:%H:%M} and "
                f"{later.name} {later.start:%H:%M}-{later.end:%H:%M}",
                f"send periods of {day} that do not overlap",
            )


def _date_periods_from_messages(messages) -> dict[date, tuple[Period, ...]]:
    """Check the date_periods of an UpdateCallbackWindowsRequest and convert
    them to ``CallbackCalendar.overrides``."""
    if len(messages) > MAX_DATE_COUNT:
        raise ValidationError(
            "date_periods",
            f"{len(messages)} dates",
            f"send at most {MAX_DATE_COUNT} dates, dropping dates that have passed",
        )
    overrides: dict[date, tuple[Period, ...]] = {}
    for index, message in enumerate(messages):
        field = f"date_periods[{index}]"
        try:
            day = date.fromisoformat(message.date)
        except ValueError:
            day = None
        # fromisoformat also takes forms such as 20261224, which
        # closed_dates accepts too, but the API promises YYYY-MM-DD here.
        if day is None or day.isoformat() != message.date:
            raise ValidationError(
                f"{field}.date", message.date, "send a date YYYY-MM-DD"
            )
        if day in overrides:
            raise ValidationError(
                f"{field}.date",
                message.date,
                "send one entry per date, with all of its periods",
            )
        if len(message.periods) > MAX_PERIODS_PER_DAY:
            raise ValidationError(
                f"{field}.periods",
                f"{len(message.periods)} periods",
                f"send at most {MAX_PERIODS_PER_DAY} periods per date",
            )
        periods: list[Period] = []
        for number, item in enumerate(message.periods):
            period_field = f"{field}.periods[{number}]"
            period = _period_from_message(item, period_field)
            if any(other.name == period.name for other in periods):
                raise ValidationError(
                    f"{period_field}.name",
                    period.name,
                    "send one period of this name per date",
                )
            periods.append(period)
        _check_no_overlap(periods, f"{field}.periods", message.date)
        overrides[day] = tuple(periods)
    return overrides


def calendar_from_request(request) -> CallbackCalendar:
    """Build a ``CallbackCalendar`` from an UpdateCallbackWindowsRequest."""
    _queue_name(request.queue, "queue")
    if len(request.periods) > 7 * MAX_PERIODS_PER_DAY:
        raise ValidationError(
            "periods",
            f"{len(request.periods)} periods",
            f"send at most {MAX_PERIODS_PER_DAY} periods per weekday",
        )
    if len(request.closed_dates) > MAX_DATE_COUNT:
        raise ValidationError(
            "closed_dates",
            f"{len(request.closed_dates)} dates",
            f"send at most {MAX_DATE_COUNT} dates, dropping dates that have passed",
        )
    weekly: dict[int, list[Period]] = {}
    for index, message in enumerate(request.periods):
        field = f"periods[{index}]"
        weekday = message.weekday
        if not admin_pb2.WEEKDAY_MONDAY <= weekday <= admin_pb2.WEEKDAY_SUNDAY:
            raise ValidationError(
                f"{field}.weekday",
                weekday,
                "send a Weekday from WEEKDAY_MONDAY (1) to WEEKDAY_SUNDAY (7)",
            )
        period = _period_from_message(message, field)
        day = weekly.setdefault(message.weekday - 1, [])
        if len(day) == MAX_PERIODS_PER_DAY:
            raise ValidationError(
                "periods",
                f"more than {MAX_PERIODS_PER_DAY} periods on "
                f"{admin_pb2.Weekday.Name(weekday)}",
                f"send at most {MAX_PERIODS_PER_DAY} periods per weekday",
            )
        # A customer picks a period by its name, so a name names one period
        # of a day.
        if any(other.name == period.name for other in day):
            raise ValidationError(
                f"{field}.name",
                period.name,
                "send one period of this name per weekday",
            )
        day.append(period)
    for weekday, periods in sorted(weekly.items()):
        _check_no_overlap(periods, "periods", admin_pb2.Weekday.Name(weekday + 1))
    closed = set()
    for index, value in enumerate(request.closed_dates):
        try:
            closed.add(date.fromisoformat(value))
        except ValueError:
            raise ValidationError(
                f"closed_dates[{index}]", value, "send a date YYYY-MM-DD"
            ) from None
    overrides = _date_periods_from_messages(request.date_periods)
    if not request.time_zone:
        raise ValidationError(
            "time_zone", "", "send an IANA zone such as Europe/Berlin"
        )
    if request.holiday_subdivision and not request.holiday_country:
        raise ValidationError(
            "holiday_subdivision",
            request.holiday_subdivision,
            "send holiday_country too, such as DE for the subdivision BY",
        )
    if request.holiday_subdivision:
        _check_subdivision(request.holiday_country, request.holiday_subdivision)
    return CallbackCalendar(
        time_zone=request.time_zone,
        weekly={day: tuple(periods) for day, periods in weekly.items()},
        holiday_country=request.holiday_country or None,
        holiday_subdivision=request.holiday_subdivision or None,
        extra_holidays=frozenset(closed),
        overrides=overrides,
    )


def retry_policy_from_request(request) -> RetryPolicy:
    rules = {}
    for index, rule in enumerate(request.rules):
        if rule.outcome not in OUTCOME_FROM_PROTO or rule.outcome in NEVER_RETRIED:
            raise ValidationError(
                f"rules[{index}].outcome",
                rule.outcome,
                "send a CallOutcome other than CONNECTED and NOT_DIALED",
            )
        outcome = OUTCOME_FROM_PROTO[rule.outcome]
        if outcome in rules:
            raise ValidationError(
                f"rules[{index}].outcome", outcome.value, "send one rule per outcome"
            )
        if rule.max_retries < 0:
            raise ValidationError(
                f"rules[{index}].max_retries", rule.max_retries, "send 0 or more"
            )
        if rule.max_retries and not rule.delays:
            raise ValidationError(
                f"rules[{index}].delays", [], "send at least one delay, such as 300s"
            )
        delays = []
        for number, delay in enumerate(rule.delays):
            field = f"rules[{index}].delays[{number}]"
            seconds = duration_seconds(delay, field)
            if not 0 <= seconds <= MAX_RETRY_DELAY_S:
                raise ValidationError(
                    field, f"{seconds:g}s", "send 0 to 7 days, such as 300s"
                )
            delays.append(seconds)
        rules[outcome] = RetryRule(rule.max_retries, tuple(delays))
    if request.max_attempts < 1:
        raise ValidationError(
            "max_attempts", request.max_attempts, "send a count of at least 1"
        )
    return RetryPolicy(rules=rules, max_attempts=request.max_attempts)


def _customer_ids(values, field: str) -> frozenset[str]:
    for index, value in enumerate(values):
        if not value.strip():
            raise ValidationError(f"{field}[{index}]", value, "send a CRM id")
        check_length(f"{field}[{index}]", value, MAX_ID_LENGTH)
    return frozenset(values)


def _attribute_matches(matches, field: str) -> dict[str, tuple[str, ...]]:
    result = {}
    for index, match in enumerate(matches):
        name = f"{field}[{index}].attribute"
        if not match.attribute.strip():
            raise ValidationError(name, match.attribute, "send a name such as segment")
        check_length(name, match.attribute, MAX_ID_LENGTH)
        if match.attribute in result:
            raise ValidationError(
                name, match.attribute, "send one match per attribute, with all values"
            )
        for number, value in enumerate(match.values):
            check_length(f"{field}[{index}].values[{number}]", value, MAX_ID_LENGTH)
        result[match.attribute] = tuple(match.values)
    return result


def grade_rules_from_request(request) -> GradeRules:
    priorities = {"vip": 0, "complaint": 0, "regular": 0}
    seen = set()
    for index, item in enumerate(request.priorities):
        if item.grade not in GRADE_NAMES:
            raise ValidationError(
                f"priorities[{index}].grade", item.grade, "send a CustomerGrade"
            )
        if item.grade in seen:
            raise ValidationError(
                f"priorities[{index}].grade",
                GRADE_NAMES[item.grade],
                "send one priority per grade",
            )
        seen.add(item.grade)
        priorities[GRADE_NAMES[item.grade]] = item.priority
    if request.complaint_threshold < 0:
        raise ValidationError(
            "complaint_threshold", request.complaint_threshold, "send 1 or more"
        )
    window_days = 30.0
    if request.HasField("complaint_window"):
        window_days = (
            _lookback_seconds(request.complaint_window, "complaint_window")
            / SECONDS_PER_DAY
        )
    return GradeRules(
        vip_ids=_customer_ids(request.vip_customer_ids, "vip_customer_ids"),
        vip_attributes=_attribute_matches(request.vip_attributes, "vip_attributes"),
        complaint_ids=_customer_ids(
            request.complaint_customer_ids, "complaint_customer_ids"
        ),
        complaint_attributes=_attribute_matches(
            request.complaint_attributes, "complaint_attributes"
        ),
        complaint_threshold=request.complaint_threshold or 1,
        complaint_window_days=window_days,
        priorities=priorities,
    )


def repeat_rule_from_request(request) -> RepeatCallerRule:
    if not request.thresholds:
        raise ValidationError("thresholds", [], "send at least one threshold")
    thresholds = []
    for index, threshold in enumerate(request.thresholds):
        field = f"thresholds[{index}]"
        if threshold.contact_count < 1:
            raise ValidationError(
                f"{field}.contact_count", threshold.contact_count, "send 1 or more"
            )
        seconds = _lookback_seconds(
            threshold.lookback_period, f"{field}.lookback_period"
        )
        thresholds.append((threshold.contact_count, seconds / SECONDS_PER_DAY))
    return RepeatCallerRule(
        thresholds=tuple(thresholds),
        priority_boost=request.priority_boost,
        offer_callback=request.offer_callback,
    )


# Conversions back: engine policy objects to the fields of the Update
# requests, which the Get responses share.


def _local_time_text(value: time) -> str:
    return value.isoformat(timespec="minutes")


def calendar_to_response(
    calendar: CallbackCalendar, stored_as: str, queue: str | None = None
) -> admin_pb2.GetCallbackWindowsResponse:
    """Convert the calendar stored under ``stored_as`` (``"*"``: the default)
    that applies to the requested ``queue`` (``stored_as`` when None).

    The response names the requested queue even when the default calendar
    applies to it, so sending it back as an update gives that queue a
    calendar of its own instead of replacing the default of every queue.
    """
    if queue is None:
        queue = stored_as
    periods = [
        admin_pb2.CallbackPeriod(
            weekday=weekday + 1,
            name=period.name,
            start_local_time=_local_time_text(period.start),
            end_local_time=_local_time_text(period.end),
        )
        for weekday in sorted(calendar.weekly)
        for period in calendar.weekly[weekday]
    ]
    return admin_pb2.GetCallbackWindowsResponse(
        queue="" if queue == "*" else queue,
        time_zone=calendar.time_zone,
        periods=periods,
        holiday_country=calendar.holiday_country or "",
        holiday_subdivision=calendar.holiday_subdivision or "",
        closed_dates=[day.isoformat() for day in sorted(calendar.extra_holidays)],
        default_calendar=stored_as == "*",
        date_periods=[
            admin_pb2.DatePeriods(
                date=day.isoformat(),
                periods=[
                    admin_pb2.DatePeriod(
                        name=period.name,
                        start_local_time=_local_time_text(period.start),
                        end_local_time=_local_time_text(period.end),
                    )
                    for period in calendar.overrides[day]
                ],
            )
            for day in sorted(calendar.overrides)
        ],
    )


def retry_policy_to_response(policy: RetryPolicy) -> admin_pb2.GetRetryPolicyResponse:
    rules = [
        admin_pb2.RetryRule(
            outcome=OUTCOME_TO_PROTO[outcome],
            max_retries=rule.max_retries,
            delays=[to_duration(seconds) for seconds in rule.delays_s],
        )
        for outcome, rule in policy.rules.items()
    ]
    return admin_pb2.GetRetryPolicyResponse(
        max_attempts=policy.max_attempts, rules=rules
    )


def repeat_rule_to_response(
    rule: RepeatCallerRule,
) -> admin_pb2.GetRepeatCallerRuleResponse:
    thresholds = [
        admin_pb2.RepeatCallerThreshold(
            contact_count=count, lookback_period=to_duration(days * SECONDS_PER_DAY)
        )
        for count, days in rule.thresholds
    ]
    return admin_pb2.GetRepeatCallerRuleResponse(
        thresholds=thresholds,
        priority_boost=rule.priority_boost,
        offer_callback=rule.offer_callback,
    )


def _attribute_messages(matches: dict[str, tuple[str, ...]]) -> list:
    return [
        admin_pb2.AttributeMatch(attribute=name, values=values)
        for name, values in matches.items()
    ]


def grade_rules_to_response(rules: GradeRules) -> admin_pb2.GetGradeRulesResponse:
    # Every grade is listed, those at priority 0 too, in the order of the
    # grades' precedence.
    priorities = [
        admin_pb2.GradePriority(
            grade=GRADE_TO_PROTO[name], priority=rules.priorities.get(name, 0)
        )
        for name in ("vip", "complaint", "regular")
    ]
    return admin_pb2.GetGradeRulesResponse(
        vip_customer_ids=sorted(rules.vip_ids),
        vip_attributes=_attribute_messages(rules.vip_attributes),
        complaint_customer_ids=sorted(rules.complaint_ids),
        complaint_attributes=_attribute_messages(rules.complaint_attributes),
        complaint_threshold=rules.complaint_threshold,
        complaint_window=to_duration(rules.complaint_window_days * SECONDS_PER_DAY),
        priorities=priorities,
    )


def capacity_limits_to_response(
    capacity: CapacityLimits, queue: str = ""
) -> admin_pb2.GetCapacityLimitsResponse:
    """Convert the limits of every queue, or only of ``queue`` when it is set."""
    limits = [
        admin_pb2.CapacityLimit(queue=name, max_callbacks_per_interval=limit)
        for name, limit in capacity.max_per_interval.items()
        if not queue or name == queue
    ]
    return admin_pb2.GetCapacityLimitsResponse(
        interval=to_duration(capacity.interval_s), limits=limits
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
                period_count=len(request.periods),
                date_count=len(calendar.overrides),
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
                interval_s = duration_seconds(request.interval, "interval")
                if interval_s <= 0 or interval_s % 60 or interval_s > SECONDS_PER_DAY:
                    raise ValidationError(
                        "interval",
                        f"{interval_s:g}s",
                        "send whole minutes up to 1 day, such as 900s",
                    )
            limits = {}
            for index, limit in enumerate(request.limits):
                field = f"limits[{index}]"
                if not limit.queue:
                    raise ValidationError(f"{field}.queue", "", "send a queue")
                _queue_name(limit.queue, f"{field}.queue")
                if limit.queue in limits:
                    raise ValidationError(
                        f"{field}.queue", limit.queue, "send one limit per queue"
                    )
                if limit.max_callbacks_per_interval < 0:
                    raise ValidationError(
                        f"{field}.max_callbacks_per_interval",
                        limit.max_callbacks_per_interval,
                        "send 0 or more",
                    )
                limits[limit.queue] = limit.max_callbacks_per_interval
            capacity = CapacityLimits(interval_s=interval_s, max_per_interval=limits)
            await self._coordinator.set_capacity_limits.remote(capacity)
            return admin_pb2.UpdateCapacityLimitsResponse(limit_count=len(limits))

    async def GetCallbackWindows(self, request, context):
        async with translate_errors(context, "GetCallbackWindows"):
            queue = _queue_name(request.queue, "queue")
            calendar, stored_as = await self._coordinator.calendar.remote(queue or "*")
            return calendar_to_response(calendar, stored_as, queue)

    async def GetRetryPolicy(self, request, context):
        async with translate_errors(context, "GetRetryPolicy"):
            policy = await self._coordinator.retry_policy.remote()
            return retry_policy_to_response(policy)

    async def GetRepeatCallerRule(self, request, context):
        async with translate_errors(context, "GetRepeatCallerRule"):
            _, rule = await self._coordinator.customer_rules.remote()
            return repeat_rule_to_response(rule)

    async def GetGradeRules(self, request, context):
        async with translate_errors(context, "GetGradeRules"):
            rules, _ = await self._coordinator.customer_rules.remote()
            return grade_rules_to_response(rules)

    async def GetCapacityLimits(self, request, context):
        async with translate_errors(context, "GetCapacityLimits"):
            queue = _queue_name(request.queue, "queue")
            capacity = await self._coordinator.capacity_limits.remote()
            return capacity_limits_to_response(capacity, queue)
