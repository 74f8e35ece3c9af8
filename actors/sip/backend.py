"""An IVR backend over a ``CallbackScheduler`` in the same process.

The gateway's IVR needs two things from the engine: the predicted wait and
a durable callback promise. ``SchedulerIvrBackend`` provides both from a
scheduler object; a Ray-hosted coordinator can offer the same two methods
(see ``callsure.actors.sip.ivr.IvrBackend``) through actor calls.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from callsure.engine.callbacks import CallbackMode, CallbackRequest
from callsure.engine.exceptions import InvalidTimeError
from callsure.engine.phone import parse_e164

_MODES = {
    "asap": CallbackMode.ASAP,
    "at_time": CallbackMode.AT_TIME,
    "predicted": CallbackMode.PREDICTED,
}


class SchedulerIvrBackend:
    """Serve IVR requests from a scheduler.

    Parameters
    ----------
    scheduler : CallbackScheduler
    time_zone : str
        IANA zone in which callers key times and hear them read back.
    queue_position : callable, optional
        ``queue_position(queue) -> int``, callers waiting ahead of a new
        caller (from the switch); 0 when not given.
    """

    def __init__(self, scheduler, time_zone: str = "UTC", queue_position=None):
        self.scheduler = scheduler
        self.zone = ZoneInfo(time_zone)
        self.time_zone = time_zone
        self.queue_position = queue_position or (lambda queue: 0)
        self._serial = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]

    def estimate_wait_s(self, caller: str, queue: str) -> float:
        now = self.scheduler.clock.now()
        estimate = self.scheduler.predictor.estimate_wait(
            queue, self.queue_position(queue), now
        )
        return float(estimate.mean_s)

    def request_callback(
        self,
        caller: str,
        queue: str,
        mode: str,
        requested_time: str | None,
        ivr_history: tuple[str, ...],
    ) -> datetime | None:
        """Store the promise; return its time in local time (``None`` for asap).

        Raises
        ------
        InvalidPhoneNumberError
            When the calling number is not E.164 (anonymous or national).
        InvalidTimeError
            When ``requested_time`` is not ``HHMM`` of a valid time of day.
        InfeasibleTimeError
            From the scheduler, for a time that cannot be kept.
        """
        now = self.scheduler.clock.now()
        request = ivr_callback_request(
            f"ivr-{self._session}-{next(self._serial)}",
            caller,
            queue,
            mode,
            requested_time,
            ivr_history,
            now=now,
            time_zone=self.time_zone,
            queue_position=self.queue_position(queue),
        )
        callback = self.scheduler.create(request)
        if mode == "asap" or callback.promised_time is None:
            return None
        return callback.promised_time.astimezone(self.zone)


def ivr_callback_request(
    request_id: str,
    caller: str,
    queue: str,
    mode: str,
    requested_time: str | None,
    ivr_history: tuple[str, ...],
    *,
    now: datetime,
    time_zone: str,
    queue_position: int = 0,
) -> CallbackRequest:
    """Build the ``CallbackRequest`` of a caller's choice in the IVR.

    The calling number is the customer id as well as the number to call
    back, because the IVR identifies the caller by nothing else.

    Raises
    ------
    InvalidPhoneNumberError
        When the calling number is not E.164 (anonymous or national).
    InvalidTimeError
        When ``requested_time`` is not ``HHMM`` of a valid time of day.
    """
    number = parse_e164(caller, "calling_number")
    local_time = None
    if mode == "at_time":
        local_time = next_local_time(requested_time or "", ZoneInfo(time_zone), now)
    return CallbackRequest(
        request_id=request_id,
        customer_id=number,
        queue=queue,
        phone_number=number,
        mode=_MODES[mode],
        entry_time=now,
        queue_position=queue_position,
        ivr_history=tuple(ivr_history),
        time_zone=time_zone if local_time else None,
        requested_local_time=local_time,
    )


def next_local_time(
    keyed: str, zone: ZoneInfo, now: datetime | None = None
) -> datetime:
    """Turn keyed ``HHMM`` into the next such naive wall-clock time in ``zone``.

    ``now`` is an aware time (default: the system clock). A time in the
    current minute means now, because keyed times have minute resolution
    and the caller keys the time in the minute it names. A time of day
    that passed before the current minute means tomorrow.

    Raises
    ------
    InvalidTimeError
        When ``keyed`` is not four digits of a time from 0000 to 2359.
    """
    if len(keyed) != 4 or not keyed.isdigit():
        raise InvalidTimeError(
            "requested_time", keyed, "key four digits, hours then minutes"
        )
    hour, minute = int(keyed[:2]), int(keyed[2:])
    if hour > 23 or minute > 59:
        raise InvalidTimeError("requested_time", keyed, "key a time from 0000 to 2359")
    local_now = (now or datetime.now(zone)).astimezone(zone).replace(tzinfo=None)
    candidate = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    this_minute = local_now.replace(second=0, microsecond=0)
    if candidate == this_minute:
        return local_now
    if candidate < this_minute:
        # NOTE: the IVR reads the promise back as HHMM only, so a caller
        # promised this time tomorrow does not hear the day.
        candidate += timedelta(days=1)
    return candidate
