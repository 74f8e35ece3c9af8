"""Planning a promise: validating a request and choosing its time.

``PromisePlanner`` turns a ``CallbackRequest`` into the times of a
promise (when it is due, the window, the expiry) under the scheduler's
calendars, capacity and prediction model. It writes nothing; the
scheduler stores the result.

Capacity is counted per interval of ``CapacityLimits.interval_s``. The
load of an interval is the releases issued in it (attempts that took an
agent, of any mode) plus the timed promises booked into it that have not
been released yet (``CallbackStore.count_booked``). A promise moves from
the second count to the first at its first release, so booking and
release count each promise once.

Booking. A customer-chosen time (``AT_TIME``, ``WINDOW``) takes spare
agent time, so it is booked only into an interval whose load is below the
predictor's ``CapacitySlot.callbacks`` (under the admin cap). A
``PREDICTED`` promise is the customer's own place in the queue. Its time
is the predicted wait quantile for the callers ahead of them, counting
the open ``PREDICTED`` and ``ASAP`` promises that entered earlier, which
the switch no longer shows and which, unlike inbound callers, do not
abandon: the predictor counts them as ``committed``. The inbound call
it replaces has left the queue, so it is booked at that time under the
admin cap only (``predicted_keeps_place``). Booking predicted promises into the
Erlang A spare capacity as well was measured on the replay of the real
call log and rejected. With the inbound service-level target that spare
capacity is 0 in overloaded evening intervals, so promises moved past
the customer's place: on 17 February 1999 (seed 7) 69.5 % were dialed
within 60 s of their time against 92.2 %, and request to service was
5.6 times shorter than redial to service against 8.1 times (the replay
section of bench/RESULTS.md has both days measured).

Releasing. A booked promise has its capacity reserved: the scheduler
releases a due timed promise whatever the recomputed capacity, limited
only by the admin cap, the free agents and the entry order. Promises
without a booking (``ASAP``) are released only into spare capacity: the
interval's limit less its load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from callsure.engine.callbacks import CallbackMode, CallbackRequest
from callsure.engine.exceptions import (
    InfeasibleTimeError,
    InvalidTimeError,
    ValidationError,
)
from callsure.engine.phone import parse_e164
from callsure.engine.windows import local_to_utc, zone_named

if TYPE_CHECKING:
    from callsure.engine.scheduler import CallbackScheduler

# How many times a nearest-feasible search alternates between the
# predictor's suggestion and the windows and capacity before it gives up.
NEAREST_SEARCH_ROUNDS = 6
# A customer's chosen time this close to now is taken as "now", because
# the IVR prompt and the network take a few seconds.
PAST_TOLERANCE = timedelta(seconds=60)
# How long before the request a caller may have entered the queue. The
# entry time is the callback's place, so an entry time years back would
# put it ahead of every real caller.
MAX_ENTRY_AGE = timedelta(days=1)
# The predictor's capacity of an interval is reused for this many seconds of
# clock time, because every create and release needs one. One Erlang A
# capacity call took 0.1 to 0.7 ms for 8 to 3000 agents (AMD EPYC, 2 cores).

CAPACITY_CACHE_S = 10.0
CAPACITY_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Plan:
    """The times of a promise, as the planner chose them."""

    phone_number: str
    entry_time: datetime
    promised_time: datetime | None
    window_end: datetime | None
    not_before: datetime
    expires_at: datetime
    fallback_at: datetime | None


def _require(value, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, value, f"send a non-empty {field}")


def _require_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None:
        raise InvalidTimeError(
            field, value.isoformat(), "send a timezone-aware time (UTC preferred)"
        )


class PromisePlanner:
    """Validates requests and picks promise times for a scheduler.

    Attributes
    ----------
    predicted_keeps_place : bool
        Book ``PREDICTED`` promises at the customer's place in the queue,
        under the admin cap only (the default; see the module docstring).
        ``False`` books them against the predictor's spare capacity too,
        the rule that was measured and rejected.
    """

    predicted_keeps_place = True

    def __init__(self, scheduler: CallbackScheduler):
        self.scheduler = scheduler
        self._capacity_cache: dict[tuple, tuple[int, float]] = {}
        # The promise a request replaces; its own booking does not count.
        self._replacing = ""

    @property
    def _policy(self):
        return self.scheduler.policy

    # Capacity

    def interval_of(self, when: datetime) -> tuple[datetime, datetime]:
        from callsure.engine.scheduler import interval_start

        length = self._policy.capacity.interval_s
        start = interval_start(when, length)
        return start, start + timedelta(seconds=length)

    def slot_limit(self, queue: str, predicted: int) -> int:
        cap = self._policy.capacity.max_per_interval.get(queue)
        return predicted if cap is None else min(predicted, cap)

    def interval_load(self, queue: str, start: datetime, end: datetime) -> int:
        """Count the releases issued in ``[start, end)`` plus the bookings
        into it not released yet (the promise being replaced left out)."""
        store = self.scheduler.store
        released = store.count_released(queue, start, end)
        return released + store.count_booked(queue, start, end, self._replacing)

    def release_room(self, queue: str, now: datetime) -> tuple[float, int]:
        """Return the room for releases of ``queue`` in the interval of ``now``.

        Returns
        -------
        admin_room : float
            Releases of any kind still allowed by the admin cap;
            ``math.inf`` when the queue has none.
        spare : int
            Releases without a booking still allowed: the interval's limit
            less its load, so the bookings not yet due keep their room.
        """
        start, end = self.interval_of(now)
        store = self.scheduler.store
        released = store.count_released(queue, start, end)
        cap = self._policy.capacity.max_per_interval.get(queue)
        admin_room = math.inf if cap is None else cap - released
        booked = store.count_booked(queue, start, end)
        spare = self.interval_limit(queue, start, end) - released - booked
        return admin_room, spare

    def find_slot(
        self, queue: str, when: datetime, *, keep_place: bool = False
    ) -> datetime | None:
        """Find the earliest time at or after ``when`` that is inside a window
        and whose interval has room for one more booking, within the booking
        horizon, or ``None`` when there is none.

        ``keep_place`` books a promise that keeps the customer's place in the
        queue: its interval needs room under the admin cap only, not spare
        capacity from the predictor.
        """
        calendar = self.scheduler.calendar_for(queue)
        horizon = when + timedelta(seconds=self._policy.promise.booking_horizon_s)
        candidate: datetime | None = when
        while candidate < horizon:
            candidate = calendar.next_open(candidate)
            if candidate is None or candidate >= horizon:
                return None
            start, end = self.interval_of(candidate)
            if self._has_room(queue, start, end, keep_place):
                return candidate
            candidate = end
        return None

    def _has_room(
        self, queue: str, start: datetime, end: datetime, keep_place: bool
    ) -> bool:
        if keep_place:
            limit = self._policy.capacity.max_per_interval.get(queue)
            if limit is None:
                return True
        else:
            limit = self.interval_limit(queue, start, end)
        return self.interval_load(queue, start, end) < limit

    def interval_limit(self, queue: str, start: datetime, end: datetime) -> int:
        """Callbacks allowed in one interval: the predictor's capacity under
        the admin cap."""
        return self.slot_limit(queue, self._predicted_capacity(queue, start, end))

    def _predicted_capacity(self, queue: str, start: datetime, end: datetime) -> int:
        key = (queue, start, end, self._policy.capacity.interval_s)
        now = self.scheduler.clock.monotonic()
        cached = self._capacity_cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        slots = self.scheduler.predictor.capacity(queue, start, end, key[3])
        value = slots[0].callbacks if slots else 0
        if len(self._capacity_cache) >= CAPACITY_CACHE_SIZE:
            self._capacity_cache.clear()
        self._capacity_cache[key] = (value, now + CAPACITY_CACHE_S)
        return value

    # Planning

    def plan(
        self, request: CallbackRequest, now: datetime, *, replacing: str = ""
    ) -> Plan:
        """Validate ``request`` and choose its times.

        ``replacing`` is the id of the pending promise the request updates,
        so that promise's own booking leaves room for the new time.

        Raises
        ------
        ValidationError
            A missing or malformed field, including the phone number.
        InvalidTimeError
            A past, naive, nonexistent or ambiguous time, or no open window.
        InfeasibleTimeError
            A chosen time (or window) that cannot be kept.
        """
        for field in ("request_id", "customer_id", "queue"):
            _require(getattr(request, field), field)
        phone = parse_e164(request.phone_number)
        if not isinstance(request.mode, CallbackMode):
            names = ", ".join(m.value for m in CallbackMode)
            raise ValidationError("mode", request.mode, f"send one of {names}")
        if request.mode is CallbackMode.CAMPAIGN:
            raise ValidationError(
                "mode",
                request.mode.value,
                "add campaign targets with CampaignService.AddCampaignTargets",
            )
        if request.queue_position < 0:
            raise ValidationError(
                "queue_position", request.queue_position, "send 0 or more"
            )
        entry = request.entry_time or now
        _require_aware(entry, "entry_time")
        if entry > now:
            raise InvalidTimeError(
                "entry_time", entry.isoformat(), "send a time that is not in the future"
            )
        if entry < now - MAX_ENTRY_AGE:
            raise InvalidTimeError(
                "entry_time",
                entry.isoformat(),
                "send a time within the last 24 hours, when the caller entered "
                "the queue",
            )

        self._replacing = replacing
        try:
            promised, window_end, not_before = self._times(request, now, entry)
        finally:
            self._replacing = ""
        promise = self._policy.promise
        expires_at = (window_end or promised or not_before) + timedelta(
            seconds=promise.expiry_s
        )
        fallback_at = None
        if request.dedicated_agent_id:
            fallback_at = not_before + timedelta(seconds=promise.dedicated_fallback_s)
        return Plan(
            phone, entry, promised, window_end, not_before, expires_at, fallback_at
        )

    def _times(self, request: CallbackRequest, now: datetime, entry: datetime):
        mode = request.mode
        if mode is CallbackMode.ASAP:
            opens = self.scheduler.calendar_for(request.queue).next_open(now)
            if opens is None:
                raise InvalidTimeError(
                    "queue",
                    request.queue,
                    "no callback window is open in the next "
                    "year; set the queue's calendar first",
                )
            if self._policy.capacity.max_per_interval.get(request.queue) == 0:
                # The other modes find no slot under this cap, while an ASAP
                # promise books none and would wait until it expires.
                raise InfeasibleTimeError(
                    now,
                    None,
                    f"queue {request.queue!r} has a callback capacity limit of 0 "
                    "per interval; raise it with UpdateCapacityLimits",
                )
            return None, None, opens
        if mode is CallbackMode.AT_TIME:
            when = self._requested_time(request, now)
            self.check_feasible(request.queue, when, now)
            return when, None, when
        if mode is CallbackMode.PREDICTED:
            when = self._predicted_time(request, now, entry)
            return when, None, when
        return self._window_times(request, now)

    def _requested_time(self, request: CallbackRequest, now: datetime) -> datetime:
        if request.requested_time is not None:
            when = request.requested_time
            _require_aware(when, "requested_time")
        elif request.requested_local_time is not None:
            if not request.time_zone:
                raise ValidationError(
                    "time_zone",
                    request.time_zone,
                    "send the IANA zone of the local time",
                )
            try:
                when = local_to_utc(
                    request.requested_local_time, zone_named(request.time_zone)
                )
            except OverflowError:
                raise InvalidTimeError(
                    "requested_local_time",
                    request.requested_local_time.isoformat(),
                    "send a time within the booking horizon",
                ) from None
        else:
            raise ValidationError(
                "requested_time",
                None,
                "send the time the customer chose (at_time mode)",
            )
        if when < now - PAST_TOLERANCE:
            raise InvalidTimeError(
                "requested_time",
                when.isoformat(),
                "send a time that is not in the past",
            )
        return max(when, now)

    def keep_limit(self, now: datetime) -> datetime:
        """Return the latest time at which a chosen time can be kept.

        The booking horizon, or the predictor's horizon when that is
        shorter: beyond it no keep probability can be computed.
        """
        horizon_s = self._policy.promise.booking_horizon_s
        predictor_horizon_s = getattr(self.scheduler.predictor, "horizon_s", None)
        if predictor_horizon_s is not None:
            horizon_s = min(horizon_s, predictor_horizon_s)
        return now + timedelta(seconds=horizon_s)

    def _predicted_time(
        self, request: CallbackRequest, now: datetime, entry: datetime
    ) -> datetime:
        # The open promises that entered earlier are places in the queue
        # ahead of this customer that the switch no longer shows.
        # They do not abandon, so they count as committed.
        promises = self.scheduler.store.count_open_before(
            request.queue, entry, self._replacing
        )
        estimate = self.scheduler.predictor.estimate_wait(
            request.queue,
            request.queue_position + promises,
            now,
            priority=request.priority,
            committed=promises,
        )
        quantile = self._policy.promise.predicted_quantile
        wait_s = estimate.quantiles_s.get(quantile, estimate.mean_s)
        if not math.isfinite(wait_s):
            # An infinite wait means no agent is expected on duty, and
            # timedelta would raise OverflowError on it.
            raise InfeasibleTimeError(
                now, None, "no agent is expected on duty, so no wait can be promised"
            )
        when = now + timedelta(seconds=wait_s)
        # A customer who entered earlier must not get a later promise.
        latest = self.scheduler.store.latest_promise(
            request.queue, entry, self._replacing
        )
        if latest is not None and latest > when:
            when = latest
        slot = self.find_slot(
            request.queue, when, keep_place=self.predicted_keeps_place
        )
        if slot is None:
            raise InfeasibleTimeError(
                when, None, "no callback capacity within the horizon"
            )
        return slot

    def _window_times(self, request: CallbackRequest, now: datetime):
        if request.window_date is None or not request.window_period:
            raise ValidationError(
                "window_period",
                request.window_period,
                "send window_date and window_period (window mode)",
            )
        calendar = self.scheduler.calendar_for(request.queue)
        # A window is a period of the queue's calendar, so its date is a
        # date in the calendar's zone; another zone would be ignored.
        if request.time_zone:
            zone = zone_named(request.time_zone)
            if zone.key != calendar.zone.key:
                raise ValidationError(
                    "time_zone",
                    request.time_zone,
                    f"window dates are local to the queue's calendar in "
                    f"{calendar.zone.key}; send that zone or none",
                )
        horizon = now + timedelta(seconds=self._policy.promise.booking_horizon_s)
        last_date = horizon.astimezone(calendar.zone).date()
        if request.window_date > last_date:
            # Checked before the window is resolved, because a date near the
            # last one Python represents would overflow there.
            raise InfeasibleTimeError(
                datetime.combine(request.window_date, time(0), calendar.zone),
                None,
                f"beyond the booking horizon; windows up to {last_date.isoformat()} "
                "can be booked",
            )
        window = calendar.window(request.window_date, request.window_period)
        if window.end <= now:
            raise InvalidTimeError(
                "window_date",
                request.window_date.isoformat(),
                "send a window that has not ended",
            )
        start = max(window.start, now)
        slot = self.find_slot(request.queue, start)
        if slot is None or slot >= window.end:
            nearest = self.find_slot(request.queue, window.end)
            raise InfeasibleTimeError(start, nearest, "the window is fully booked")
        return slot, window.end, slot

    def check_feasible(self, queue: str, when: datetime, now: datetime) -> None:
        """Raise ``InfeasibleTimeError`` unless a promise at ``when`` can be
        kept: inside a window, with room in its interval, and a keep
        probability of at least ``PromisePolicy.keep_target``."""
        limit = self.keep_limit(now)
        if when > limit:
            # The nearest feasible time is searched from one interval before
            # the horizon, not from ``when``: a search from a year ahead walked
            # every interval in between and held the coordinator for minutes.
            step = timedelta(seconds=self._policy.capacity.interval_s)
            nearest = self.nearest_feasible(
                queue, max(now, limit - step), now
            ) or self.nearest_feasible(queue, now, now)
            raise InfeasibleTimeError(
                when,
                nearest,
                f"beyond the booking horizon; times up to "
                f"{limit.isoformat(timespec='minutes')} can be promised",
            )
        reason = self._infeasibility(queue, when, now)
        if reason is None:
            return
        raise InfeasibleTimeError(when, self.nearest_feasible(queue, when, now), reason)

    def _infeasibility(self, queue: str, when: datetime, now: datetime) -> str | None:
        target = self._policy.promise.keep_target
        if not self.scheduler.calendar_for(queue).is_open(when):
            return "outside the callback windows"
        if self.find_slot(queue, when) != when:
            return "no callback capacity left in that interval"
        probability = self.scheduler.predictor.keep_probability(queue, when, now)
        if probability < target:
            return f"keep probability {probability:.2f} is below {target:.2f}"
        return None

    def nearest_feasible(
        self, queue: str, when: datetime, now: datetime
    ) -> datetime | None:
        """Find the feasible time nearest ``when``; ``None`` when the predictor
        has none within its horizon."""
        target = self._policy.promise.keep_target
        candidate = when
        for _ in range(NEAREST_SEARCH_ROUNDS):
            suggestion = self.scheduler.predictor.nearest_feasible(
                queue, candidate, now, target
            )
            if suggestion is None:
                return None
            candidate = self.find_slot(queue, max(suggestion, now))
            if candidate is None:
                return None
            if self._infeasibility(queue, candidate, now) is None:
                return candidate
            candidate += timedelta(seconds=self._policy.capacity.interval_s / 4)
        return None
