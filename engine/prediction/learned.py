"""The learned predictor: the ``WaitPredictor`` protocol from the event history.

``LearnedPredictor`` keeps, per queue, the live ``QueueState`` and the
online learners of ``online.py``, all fed by ``observe`` one event at a
time. It computes

- ``estimate_wait`` with the boosted ``WaitModel`` applied to the queue as
  it is now (so estimates change as the queue changes), the chance of
  being served from Erlang A with the learned rates;
- ``capacity``, ``keep_probability`` and ``nearest_feasible`` from
  Erlang A over the learned forecast: arrivals by day type and interval
  raised during a surge, agents on duty by interval (the agents active
  now for the next half hour), handling and patience as running means.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from callsure.engine.calllog import CallRecord
from callsure.engine.exceptions import NotFoundError, ValidationError
from callsure.engine.prediction import erlang
from callsure.engine.prediction.erlang_a_predictor import ErlangAPredictor
from callsure.engine.prediction.features import DayCalendar, feature_vector
from callsure.engine.prediction.model import WaitModel
from callsure.engine.prediction.online import (
    ArrivalProfile,
    RunningRates,
    StaffingProfile,
)
from callsure.engine.prediction.state import (
    ACTIVE_S,
    JOIN,
    LEAVE,
    SERVICE_END,
    SERVICE_START,
    QueueEvent,
    QueueState,
    events_from_records,
)
from callsure.engine.predictor import CapacitySlot, WaitEstimate

logger = logging.getLogger(__name__)


class LearnedForecast:
    """The ``Forecast`` of one queue from its online learners."""

    def __init__(self, calendar: DayCalendar, rates: RunningRates):
        self.calendar = calendar
        self.state = QueueState()
        self.arrivals = ArrivalProfile(calendar)
        self.staffing = StaffingProfile(calendar)
        self.rates = rates
        self.joins_by_priority: dict[int, int] = {}
        self.join_times: dict[int, tuple[float, str]] = {}
        # Calls that queued and have not reached an agent; a service start
        # of any other call is an arrival answered without queueing.
        self.queued_calls: set[int] = set()
        # Call type of each call in service, for handling time by type.
        self.service_types: dict[int, str] = {}

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(max(self.state.time, 0.0), UTC)

    def observe(self, event: QueueEvent) -> None:
        """Feed one event to the queue state and every learner."""
        moment = datetime.fromtimestamp(event.time, UTC)
        if event.kind == JOIN:
            self.arrivals.add(moment)
            self.joins_by_priority[event.priority] = (
                self.joins_by_priority.get(event.priority, 0) + 1
            )
            self.join_times[event.call_id] = (event.time, event.call_type)
            self.queued_calls.add(event.call_id)
        elif event.kind == LEAVE:
            joined = self.join_times.pop(event.call_id, None)
            if joined is not None:
                self.rates.add_wait(event.time - joined[0], event.served)
            if not event.served:
                self.queued_calls.discard(event.call_id)
        elif event.kind == SERVICE_START:
            self.service_types[event.call_id] = event.call_type
            if event.call_id in self.queued_calls:
                self.queued_calls.discard(event.call_id)
            else:
                # Answered at once: a request for an agent that never queued.
                self.arrivals.add(moment)
        elif event.kind == SERVICE_END:
            call_type = self.service_types.pop(event.call_id, None)
            started = self.state.in_service.get(event.agent)
            if started is not None:
                self.rates.add_service(call_type or "", event.time - started)
        self.arrivals.advance(moment)
        self.state.apply(event)
        snapshot = self.state.snapshot(event.time)
        self.staffing.observe(moment, snapshot.active_agents)

    def arrival_rate(self, when: datetime, priority: int | None = None) -> float:
        rate = self.arrivals.rate(when, self.now)
        total = sum(self.joins_by_priority.values())
        if priority is None or total == 0:
            return rate
        share = sum(n for p, n in self.joins_by_priority.items() if p >= priority)
        return rate * share / total

    def agents(self, when: datetime) -> float:
        # Within the activity window the agents active now are the best
        # guess; further out, the learned staffing of that interval.
        # NOTE: without login events, "active" means served someone in the
        # last 30 minutes, which overstates the agents on duty after a shift
        # change; AGENT_ON/AGENT_OFF events, when sent, are counted too.
        lead_s = (when - self.now).total_seconds()
        if 0 <= lead_s <= ACTIVE_S:
            return float(self.state.snapshot(self.state.time).active_agents)
        return self.staffing.agents(when)

    def handle_s(self, when: datetime) -> float:
        return self.rates.handle_s()

    def patience_s(self, when: datetime) -> float:
        return self.rates.patience_s()


class LearnedPredictor:
    """Wait, capacity and keep predictions learned from the event history.

    Parameters
    ----------
    model : WaitModel
        Fitted wait model (``callsure model fit``).
    queues : iterable of str
        Queue names served.
    calendar : DayCalendar or None
        Day types; by default the model's country and time zone.
    default_call_type : str
        Call type assumed for a caller whose type the request does not give;
        the model was fitted with types, so a typical one beats none.
    **erlang_options
        Passed to ``ErlangAPredictor`` (service-level target, keep window,
        horizon).
    """

    def __init__(
        self,
        model: WaitModel,
        queues: Iterable[str],
        calendar: DayCalendar | None = None,
        default_call_type: str = "PS",
        **erlang_options,
    ):
        self.model = model
        self.default_call_type = default_call_type
        self.calendar = calendar or DayCalendar(model.country, model.zone)
        self.forecasts = {
            name: LearnedForecast(self.calendar, RunningRates(model.rates))
            for name in queues
        }
        self.erlang = ErlangAPredictor(self.forecasts, **erlang_options)

    @classmethod
    def from_settings(cls, settings, queues: Iterable[str]) -> LearnedPredictor:
        """Build the predictor from the ``prediction`` configuration section.

        Raises ``ValidationError`` when ``model_file`` is empty or unreadable:
        callers without a model use ``ErlangAPredictor`` with their own
        forecasts instead.
        """
        if not settings.model_file:
            raise ValidationError(
                "prediction.model_file",
                "",
                "set it to a file from `callsure model fit`",
            )
        return cls(
            WaitModel.load(settings.model_file),
            queues,
            DayCalendar(settings.country, settings.zone),
            service_level_target=settings.service_level_target,
            service_level_time_s=settings.service_level_time_s,
            keep_window_s=settings.keep_window_s,
            horizon_s=settings.horizon_s,
        )

    def _forecast(self, queue: str) -> LearnedForecast:
        try:
            return self.forecasts[queue]
        except KeyError:
            raise NotFoundError("queue", queue) from None

    def observe(self, queue: str, event: QueueEvent) -> None:
        """Apply one event of ``queue``; events must come in time order."""
        forecast = self._forecast(queue)
        if event.time < forecast.state.time:
            raise ValidationError(
                "event.time",
                event.time,
                f"send events in time order (last was {forecast.state.time})",
            )
        forecast.observe(event)

    def observe_records(self, queue: str, records: Iterable[CallRecord]) -> None:
        """Replay call-log records into ``queue``, to warm the learners up."""
        for event in events_from_records(records):
            self.observe(queue, event)

    def estimate_wait(
        self,
        queue: str,
        ahead: int,
        now: datetime,
        *,
        priority: int = 0,
        committed: int = 0,
        call_type: str | None = None,
    ) -> WaitEstimate:
        """Estimate the wait of a caller with ``ahead`` before it, joining now.

        ``call_type`` is an optional extension of the protocol; None means
        ``default_call_type``. The model learned from inbound queues, whose
        callers may abandon; the ``committed`` promises ahead, which do
        not, add the difference they make to the Erlang A wait.

        Mean and 50 %/90 % quantiles come from the wait model on the live
        queue state; 80 % and 95 % follow the Erlang A shape scaled to the
        model's 90 % value.
        """
        if now.tzinfo is None:
            raise ValidationError("now", now, "pass a timezone-aware UTC datetime")
        if ahead < 0:
            raise ValidationError("ahead", ahead, "use a count >= 0")
        forecast = self._forecast(queue)
        snapshot = replace(
            forecast.state.snapshot(now.timestamp(), priority), ahead=ahead
        )
        features = feature_vector(
            snapshot,
            priority=priority,
            call_type=call_type or self.default_call_type,
            local_time=self.calendar.local(now),
            day_type=self.calendar.day_type(now),
            rates=self.model.rates,
        )
        predicted = self.model.predict(features[None, :], np.array([ahead]))
        mean = float(predicted["mean"][0])
        upper = float(predicted["0.9"][0])
        classic = self.erlang.estimate_wait(queue, ahead, now, priority=priority)
        if not math.isfinite(classic.quantiles_s[0.9]) or classic.quantiles_s[0.9] <= 0:
            scale = 1.0
        else:
            scale = upper / classic.quantiles_s[0.9]
        quantiles = {p: v * scale for p, v in classic.quantiles_s.items()}
        quantiles[0.5] = float(predicted["0.5"][0])
        quantiles[0.9] = upper
        if committed:
            with_promises = self.erlang.estimate_wait(
                queue, ahead, now, priority=priority, committed=committed
            )
            mean += _extra(with_promises.mean_s, classic.mean_s)
            quantiles = {
                p: v + _extra(with_promises.quantiles_s[p], classic.quantiles_s[p])
                for p, v in quantiles.items()
            }
        agents = max(snapshot.active_agents, 1)
        served = erlang.p_served(
            agents,
            1.0 / forecast.rates.handle_s(),
            1.0 / forecast.rates.patience_s(),
            ahead - committed,
        )
        return WaitEstimate(
            mean_s=mean, quantiles_s=quantiles, p_served=float(served), ahead=ahead
        )

    def waiting_estimates(self, queue: str, now: datetime) -> dict[int, WaitEstimate]:
        """Re-estimate every caller waiting in ``queue``, keyed by call id.

        Each caller's position counts the callers before it in service
        order, high priority first as the queue serves them.
        """
        state = self._forecast(queue).state
        order = sorted(state.waiting.items(), key=lambda item: item[1][1])
        return {
            call_id: self.estimate_wait(queue, position, now, priority=entry[2])
            for position, (call_id, entry) in enumerate(order)
        }

    def capacity(
        self, queue: str, start: datetime, end: datetime, interval_s: float = 900.0
    ) -> list[CapacitySlot]:
        """Return callback capacity per interval from the learned forecast."""
        return self.erlang.capacity(queue, start, end, interval_s)

    def keep_probability(self, queue: str, when: datetime, now: datetime) -> float:
        """Return the probability that a callback due at ``when`` is kept (Erlang A)."""
        return self.erlang.keep_probability(queue, when, now)

    def nearest_feasible(
        self, queue: str, when: datetime, now: datetime, target: float = 0.9
    ) -> datetime | None:
        """Return the time nearest ``when`` kept with probability >= ``target``."""
        return self.erlang.nearest_feasible(queue, when, now, target)


def _extra(with_promises: float, classic: float) -> float:
    """Return what committed callers add to a wait; 0 when either is infinite."""
    if math.isfinite(with_promises) and math.isfinite(classic):
        return max(with_promises - classic, 0.0)
    return 0.0
