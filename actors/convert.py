"""Conversion between API messages and engine objects.

The engine speaks UTC datetimes, enums and plain strings; the API speaks
``google.protobuf.Timestamp``, ``Duration`` and prefixed enum values. Every
conversion of a request checks the shape the engine cannot see: missing
messages, unknown enum numbers, malformed local times. It raises the
engine's ``ValidationError`` with the field path of the request, so the
error leaves the server as INVALID_ARGUMENT naming that field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from callsure.engine.callbacks import (
    Callback,
    CallbackMode,
    CallbackRequest,
    CallbackState,
    Event,
    Outcome,
)
from callsure.engine.exceptions import ValidationError
from callsure.engine.predictor import WaitEstimate
from callsure.v1 import callback_pb2, common_pb2, event_pb2

CALLBACK_PREFIX = "callbacks/"
AGENT_PREFIX = "agents/"
CAMPAIGN_PREFIX = "campaigns/"
MAX_REQUEST_ID_CHARS = 128

MODE_FROM_PROTO = {
    callback_pb2.CALLBACK_MODE_UNSPECIFIED: CallbackMode.ASAP,
    callback_pb2.CALLBACK_MODE_ASAP: CallbackMode.ASAP,
    callback_pb2.CALLBACK_MODE_AT_TIME: CallbackMode.AT_TIME,
    callback_pb2.CALLBACK_MODE_PREDICTED: CallbackMode.PREDICTED,
    callback_pb2.CALLBACK_MODE_WINDOW: CallbackMode.WINDOW,
}
MODE_TO_PROTO = {
    CallbackMode.ASAP: callback_pb2.CALLBACK_MODE_ASAP,
    CallbackMode.AT_TIME: callback_pb2.CALLBACK_MODE_AT_TIME,
    CallbackMode.PREDICTED: callback_pb2.CALLBACK_MODE_PREDICTED,
    CallbackMode.WINDOW: callback_pb2.CALLBACK_MODE_WINDOW,
    CallbackMode.CAMPAIGN: callback_pb2.CALLBACK_MODE_CAMPAIGN,
}
STATE_TO_PROTO = {
    state: callback_pb2.CallbackState.Value(f"CALLBACK_STATE_{state.name}")
    for state in CallbackState
}
STATE_FROM_PROTO = {number: state for state, number in STATE_TO_PROTO.items()}
OUTCOME_TO_PROTO = {
    outcome: callback_pb2.CallOutcome.Value(f"CALL_OUTCOME_{outcome.name}")
    for outcome in Outcome
}
OUTCOME_FROM_PROTO = {number: outcome for outcome, number in OUTCOME_TO_PROTO.items()}
GRADE_TO_PROTO = {
    "regular": common_pb2.CUSTOMER_GRADE_REGULAR,
    "vip": common_pb2.CUSTOMER_GRADE_VIP,
    "complaint": common_pb2.CUSTOMER_GRADE_COMPLAINT,
}
GRADE_FROM_PROTO = {number: grade for grade, number in GRADE_TO_PROTO.items()}


# Well-known types.


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NANOS_PER_MICROSECOND = 1000


def to_timestamp(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    """Convert an aware datetime to a ``Timestamp``; ``None`` stays ``None``."""
    if when is None:
        return None
    # Integer fields of the difference, exact to the microsecond; about 4x
    # cheaper than Timestamp.FromDatetime, which every reply calls 5 times.
    since = when - EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86400 + since.seconds,
        nanos=since.microseconds * NANOS_PER_MICROSECOND,
    )


def set_timestamp(target: timestamp_pb2.Timestamp, when: datetime) -> None:
    """Write the aware datetime ``when`` into the ``Timestamp`` field ``target``.

    Cheaper than building a ``Timestamp`` and copying it in, which a reply
    of CreateCallback would do five times.
    """
    since = when - EPOCH
    target.seconds = since.days * 86400 + since.seconds
    target.nanos = since.microseconds * NANOS_PER_MICROSECOND


def from_timestamp(message, field: str, path: str | None = None) -> datetime | None:
    """Read the ``Timestamp`` field ``field`` of ``message`` as UTC, if set.

    Raises
    ------
    ValidationError
        Naming ``path`` (``field`` by default) when the ``Timestamp`` is
        outside 0001-01-01 to 9999-12-31 or its nanos outside 0 to 999999999,
        the ranges that ``google/protobuf/timestamp.proto`` allows.
    """
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValidationError(
            path or field,
            f"seconds={stamp.seconds} nanos={stamp.nanos}",
            "send a time from 0001-01-01 to 9999-12-31 UTC, nanos 0 to 999999999",
        ) from None


# How far a reported event may lie ahead of the server's clock: clocks of
# a CTI and the server drift apart by seconds, not minutes.
MAX_EVENT_CLOCK_SKEW = timedelta(minutes=5)
# Oldest age of a reported event. Waits learned from an event decades old
# would skew the prediction, and a day covers a CTI feed's backlog after
# an outage.
MAX_EVENT_AGE = timedelta(days=1)


def event_time_of(message, field: str, path: str, now: datetime) -> datetime | None:
    """Read the time of a reported event, which may lie neither in the
    future nor more than a day back.

    An agent or a contact keeps its latest event and ignores older ones,
    so one event from the far future would hide every real one after it.
    """
    when = from_timestamp(message, field, path)
    if when is not None and when > now + MAX_EVENT_CLOCK_SKEW:
        raise ValidationError(
            path,
            when.isoformat(),
            f"send a time no later than the server's clock {now.isoformat()} "
            "plus 5 minutes; check the sender's clock",
        )
    if when is not None and when < now - MAX_EVENT_AGE:
        raise ValidationError(
            path,
            when.isoformat(),
            f"send a time within the last 24 hours of the server's clock "
            f"{now.isoformat()}; check the sender's clock",
        )
    return when


def to_duration(seconds: float) -> duration_pb2.Duration:
    """Convert seconds to a ``Duration``, rounded to the microsecond."""
    # A Duration's seconds and nanos carry the same sign.
    micros = round(seconds * 1_000_000)
    whole, rest = divmod(abs(micros), 1_000_000)
    sign = -1 if micros < 0 else 1
    return duration_pb2.Duration(
        seconds=sign * whole, nanos=sign * rest * NANOS_PER_MICROSECOND
    )


# Limits of google/protobuf/duration.proto: about 10,000 years.
MAX_DURATION_SECONDS = 315_576_000_000
NANOS_PER_SECOND = 1_000_000_000


def duration_seconds(duration: duration_pb2.Duration, field: str = "duration") -> float:
    """Return a ``Duration`` in seconds.

    Raises
    ------
    ValidationError
        Naming ``field`` when the ``Duration`` breaks the rules of
        ``google/protobuf/duration.proto``: seconds beyond about 10,000 years,
        nanos beyond a second, or seconds and nanos of opposite signs.
    """
    seconds, nanos = duration.seconds, duration.nanos
    if (
        abs(seconds) > MAX_DURATION_SECONDS
        or abs(nanos) >= NANOS_PER_SECOND
        or (seconds > 0 and nanos < 0)
        or (seconds < 0 and nanos > 0)
    ):
        raise ValidationError(
            field,
            f"seconds={seconds} nanos={nanos}",
            "send a Duration within 10,000 years, nanos below 1 second and of "
            "the sign of seconds, such as 300s",
        )
    return seconds + nanos / NANOS_PER_SECOND


# Resource names.


def callback_name(callback_id: str) -> str:
    return CALLBACK_PREFIX + callback_id


def parse_callback_name(name: str, field: str = "name") -> str:
    """Return the id of ``callbacks/{id}`` or raise ``ValidationError``."""
    callback_id = name.removeprefix(CALLBACK_PREFIX)
    if not name.startswith(CALLBACK_PREFIX) or not callback_id or "/" in callback_id:
        raise ValidationError(
            field, name, "send a resource name of the form callbacks/{callback}"
        )
    return callback_id


# Callbacks.


def require_text(value: str, field: str, example: str) -> str:
    if not value or not value.strip():
        raise ValidationError(field, value, f"send a non-empty value such as {example}")
    return value.strip()


def _requested_local_time(message: callback_pb2.Callback) -> datetime | None:
    if not message.requested_local_time:
        return None
    try:
        naive = datetime.fromisoformat(message.requested_local_time)
    except ValueError:
        naive = None
    if naive is None or naive.tzinfo is not None:
        raise ValidationError(
            "callback.requested_local_time",
            message.requested_local_time,
            "send a local time without offset, such as 2026-12-04T18:30",
        )
    return naive


def _window_date(message: callback_pb2.Callback) -> date | None:
    if not message.window_date:
        return None
    try:
        return date.fromisoformat(message.window_date)
    except ValueError:
        raise ValidationError(
            "callback.window_date",
            message.window_date,
            "send a local date YYYY-MM-DD such as 2026-12-04",
        ) from None


def callback_request_from_proto(
    request: callback_pb2.CreateCallbackRequest,
    grading: tuple[str, int, str | None] = ("regular", 0, None),
) -> CallbackRequest:
    """Build the engine's ``CallbackRequest`` from a ``CreateCallbackRequest``.

    ``grading`` is the customer's ``(grade, priority, dedicated_agent_id)``
    from its shard, so the request is built once with them.

    Raises
    ------
    ValidationError
        With the request's field path, for a missing or malformed field.
    """
    request_id = require_text(request.request_id, "request_id", "a UUID")
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise ValidationError(
            "request_id",
            request_id[:16] + "...",
            f"send at most {MAX_REQUEST_ID_CHARS} characters, such as a UUID",
        )
    if not request.HasField("callback"):
        raise ValidationError("callback", None, "send the callback to create")
    message = request.callback
    if message.mode == callback_pb2.CALLBACK_MODE_CAMPAIGN:
        raise ValidationError(
            "callback.mode",
            message.mode,
            "add campaign targets with CampaignService.AddCampaignTargets",
        )
    if message.mode not in MODE_FROM_PROTO:
        raise ValidationError(
            "callback.mode", message.mode, "send one of the CallbackMode values"
        )
    if message.queue_position < 0:
        raise ValidationError(
            "callback.queue_position", message.queue_position, "send 0 or more"
        )
    return CallbackRequest(
        request_id=request_id,
        customer_id=require_text(message.customer_id, "callback.customer_id", "c-42"),
        queue=require_text(message.queue, "callback.queue", "billing"),
        phone_number=message.phone_number,
        mode=MODE_FROM_PROTO[message.mode],
        entry_time=from_timestamp(message, "entry_time"),
        requested_time=from_timestamp(message, "requested_time"),
        requested_local_time=_requested_local_time(message),
        time_zone=message.time_zone or None,
        window_date=_window_date(message),
        window_period=message.window_period or None,
        queue_position=message.queue_position,
        ivr_history=tuple(message.ivr_history),
        language=message.language or "en",
        grade=grading[0],
        priority=grading[1],
        dedicated_agent_id=grading[2],
    )


def wait_to_proto(estimate: WaitEstimate) -> common_pb2.WaitDistribution:
    """Convert a ``WaitEstimate`` to a ``WaitDistribution``."""
    distribution = common_pb2.WaitDistribution(
        mean_wait=to_duration(estimate.mean_s),
        served_probability=estimate.p_served,
        ahead_count=estimate.ahead,
    )
    quantiles = distribution.quantiles
    for probability, wait_s in sorted(estimate.quantiles_s.items()):
        quantiles.add(probability=probability, wait=to_duration(wait_s))
    return distribution


CALLBACK_FIELDS = frozenset(callback_pb2.Callback.DESCRIPTOR.fields_by_name)


def in_callback(exc: ValidationError) -> ValidationError:
    """Return ``exc`` with its field as a path of CreateCallbackRequest."""
    if exc.field not in CALLBACK_FIELDS:
        return exc
    return type(exc)(f"callback.{exc.field}", exc.value, exc.fix)


def callback_to_proto(
    callback: Callback,
    estimate: WaitEstimate | None = None,
    expected_wait: common_pb2.WaitDistribution | None = None,
) -> callback_pb2.Callback:
    """Convert an engine ``Callback`` to the API's ``Callback``.

    ``expected_wait`` is ``wait_to_proto(estimate)`` made beforehand, for a
    batch of callbacks that share one estimate.
    """
    message = callback_pb2.Callback(
        name=CALLBACK_PREFIX + callback.callback_id,
        customer_id=callback.customer_id,
        phone_number=callback.phone_number,
        queue=callback.queue,
        mode=MODE_TO_PROTO[callback.mode],
        ivr_history=callback.ivr_history,
        language=callback.language,
        state=STATE_TO_PROTO[callback.state],
        state_reason=callback.reason,
        grade=GRADE_TO_PROTO.get(callback.grade, common_pb2.CUSTOMER_GRADE_UNSPECIFIED),
        attempt_count=callback.attempts,
    )
    set_timestamp(message.entry_time, callback.entry_time)
    set_timestamp(message.expire_time, callback.expires_at)
    set_timestamp(message.create_time, callback.created_at)
    set_timestamp(message.update_time, callback.updated_at or callback.created_at)
    window = message.promised_window
    set_timestamp(window.start_time, callback.promised_time or callback.not_before)
    if callback.window_end is not None:
        set_timestamp(window.end_time, callback.window_end)
    if callback.mode is CallbackMode.AT_TIME and callback.promised_time:
        set_timestamp(message.requested_time, callback.promised_time)
    if callback.dedicated_agent_id:
        message.dedicated_agent = AGENT_PREFIX + callback.dedicated_agent_id
    if callback.campaign_id:
        message.campaign = CAMPAIGN_PREFIX + callback.campaign_id
    if callback.time_zone:
        message.time_zone = callback.time_zone
    if callback.window_date:
        message.window_date = callback.window_date
    if callback.window_period:
        message.window_period = callback.window_period
    if expected_wait is None and estimate is not None:
        expected_wait = wait_to_proto(estimate)
    if expected_wait is not None:
        message.expected_wait.CopyFrom(expected_wait)
    return message


# Events.


def event_to_proto(event: Event) -> event_pb2.Event:
    """Convert a journal ``Event`` to the API's ``Event``."""
    message = event_pb2.Event(
        cursor=str(event.seq),
        sequence=event.seq,
        kind=event.kind,
        event_time=to_timestamp(event.time),
        callback=callback_name(event.callback_id) if event.callback_id else "",
    )
    payload = event.payload or {}
    row = payload.get("callback")
    if isinstance(row, dict):
        message.callback_snapshot.CopyFrom(callback_to_proto(Callback.from_row(row)))
        if row.get("campaign_id"):
            message.campaign = CAMPAIGN_PREFIX + row["campaign_id"]
    campaign = payload.get("campaign")
    if isinstance(campaign, dict):
        message.campaign = CAMPAIGN_PREFIX + str(campaign.get("campaign_id", ""))
    attempt = payload.get("attempt")
    if isinstance(attempt, dict):
        message.attempt_id = str(attempt.get("attempt_id", ""))
        outcome = attempt.get("outcome")
        if outcome:
            message.outcome = OUTCOME_TO_PROTO[Outcome(outcome)]
    detail = payload.get("reason") or payload.get("detail")
    if isinstance(detail, str):
        message.detail = detail
    return message


def parse_cursor(cursor: str) -> int:
    """Return the sequence number of an event cursor; empty means 0."""
    if not cursor:
        return 0
    # Event sequence numbers are SQLite integers, below 2**63 (19 digits).
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19:
        raise ValidationError(
            "after_cursor",
            cursor[:32],
            "send the cursor of an event you received",
        )
    seq = int(cursor)
    if seq >= 2**63:
        raise ValidationError(
            "after_cursor", cursor, "send the cursor of an event you received"
        )
    return seq
