"""Shared set-up of the scheduler tests: a real SQLite store, the Erlang A
predictor and a virtual clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time

from callsure.engine.callbacks import CallbackMode, CallbackRequest
from callsure.engine.clock import VirtualClock
from callsure.engine.policy import CapacityLimits, SchedulerPolicy
from callsure.engine.prediction import ErlangAPredictor, StaticForecast
from callsure.engine.scheduler import CallbackScheduler
from callsure.engine.store import SQLiteStore
from callsure.engine.windows import CallbackCalendar, Period

# Monday 2 March 2026, 09:00 UTC.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# One call a minute, 3 minutes handling, 5.75 minutes patience, 8 agents:
# inbound needs about 5 agents, so the predictor leaves room for callbacks.
QUIET = StaticForecast(
    arrivals_per_s=1 / 60, agents_on_duty=8, mean_handle_s=180, mean_patience_s=345
)

_numbers = itertools.count(100)


def make_predictor(forecast: StaticForecast = QUIET) -> ErlangAPredictor:
    return ErlangAPredictor(
        {"billing": forecast, "sales": forecast}, horizon_s=3 * 86400
    )


def make_scheduler(
    path, clock: VirtualClock, *, cap: int | None = None, policy=None, predictor=None
) -> CallbackScheduler:
    policy = policy or SchedulerPolicy()
    if cap is not None:
        policy = SchedulerPolicy(
            retry=policy.retry,
            sms=policy.sms,
            capacity=CapacityLimits(
                interval_s=policy.capacity.interval_s,
                max_per_interval={"billing": cap, "sales": cap},
            ),
            promise=policy.promise,
        )
    return CallbackScheduler(
        SQLiteStore(path), predictor or make_predictor(), clock, policy
    )


def request(
    customer_id: str,
    *,
    queue: str = "billing",
    mode: CallbackMode = CallbackMode.ASAP,
    request_id: str | None = None,
    phone: str | None = None,
    **fields,
) -> CallbackRequest:
    return CallbackRequest(
        request_id=request_id or f"req-{customer_id}-{next(_numbers)}",
        customer_id=customer_id,
        queue=queue,
        phone_number=phone or f"+1415555{next(_numbers) % 10000:04d}",
        mode=mode,
        **fields,
    )


def office_hours(time_zone: str = "UTC", **overrides) -> CallbackCalendar:
    """Monday to Friday, 08:00 to 18:00 local."""
    day = (Period("day", time(8), time(18)),)
    return CallbackCalendar(
        time_zone=time_zone, weekly={weekday: day for weekday in range(5)}, **overrides
    )
