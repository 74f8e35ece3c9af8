"""The prediction model the coordinator plans with, fed by the live feed.

``LivePredictor`` implements the scheduler's ``WaitPredictor`` protocol for
every queue named in a request or an event, creating a queue's learners on
first use. Per
queue it keeps the online learners of ``callsure.engine.prediction``
(``LearnedForecast``: the live ``QueueState``, arrivals by day type and
surge, staffing, handling time and patience) and updates them one
``QueueEvent`` at a time through ``observe``; nothing is refitted per
prediction.

- With ``prediction.model_file`` set, each queue gets a ``LearnedPredictor``
  over the fitted ``WaitModel``: waits come from the boosted model applied
  to the live queue, with the model's rates as the priors of the online
  means.
- Without it, waits come from Erlang A over the same online learners, with
  the ``[forecast_prior]`` rates as priors.

Capacity, keep probabilities and feasible times come from Erlang A over
``PriorForecast``: the learned forecast where the feed has taught it, the
``[forecast_prior]`` values where it has not (no agent of the queue seen
yet, an interval of the day not learned yet).

``to_state`` and ``restore`` convert the learners to built-in values, so
the coordinator can snapshot them like the shards do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime

from callsure.actors.learner_state import forecast_to_state, restore_forecast
from callsure.engine.exceptions import ConfigError, ValidationError
from callsure.engine.prediction import ErlangAPredictor, StaticForecast
from callsure.engine.prediction.features import DayCalendar, Rates
from callsure.engine.prediction.learned import LearnedForecast, LearnedPredictor
from callsure.engine.prediction.model import WaitModel
from callsure.engine.prediction.online import SLOT_S, RunningRates
from callsure.engine.prediction.state import (
    ACTIVE_S,
    AGENT_OFF,
    AGENT_ON,
    HIGH_PRIORITY,
    PRIORITY_CREDIT_S,
    QueueEvent,
)
from callsure.engine.predictor import CapacitySlot, WaitEstimate

logger = logging.getLogger(__name__)

DEFAULT_FORECAST = StaticForecast(
    arrivals_per_s=0.02,
    agents_on_duty=10.0,
    mean_handle_s=300.0,
    mean_patience_s=180.0,
)
# Queue names come from clients; each queue costs its learners' memory.
MAX_QUEUES = 10_000


class PriorForecast:
    """The ``Forecast`` of one queue: learned where known, else the prior.

    Parameters
    ----------
    learned : LearnedForecast
        The queue's online learners.
    prior : StaticForecast
        Arrivals and agents assumed before the feed teaches them.
    """

    def __init__(self, learned: LearnedForecast, prior: StaticForecast):
        self.learned = learned
        self.prior = prior
        # Set by the first agent event or answered contact of the queue;
        # from then on zero agents seen means zero on duty, not the prior.
        self.agents_reported = False

    def _slot_key(self, when: datetime) -> tuple[str, int]:
        calendar = self.learned.calendar
        local = calendar.local(when)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        return calendar.day_type(when), int(seconds // SLOT_S)

    def arrival_rate(self, when: datetime, priority: int | None = None) -> float:
        day_type, slot = self._slot_key(when)
        if self.learned.arrivals.slot_means.get(day_type, slot) is not None:
            return self.learned.arrival_rate(when, priority)
        rate = self.prior.arrival_rate(when)
        if priority is None:
            return rate
        # The prior's arrivals split by priority as the queue's joins did;
        # before any join, every caller is assumed regular (priority 0).
        joins = self.learned.joins_by_priority
        total = sum(joins.values())
        if total == 0:
            return rate if priority <= 0 else 0.0
        return rate * sum(n for p, n in joins.items() if p >= priority) / total

    def agents(self, when: datetime) -> float:
        if not self.agents_reported:
            return self.prior.agents(when)
        lead_s = (when - self.learned.now).total_seconds()
        if lead_s > ACTIVE_S:
            day_type, slot = self._slot_key(when)
            if self.learned.staffing.slot_means.get(day_type, slot) is not None:
                return self.learned.staffing.agents(when)
        # Within the activity window, and beyond it until the staffing of
        # that interval is learned, the agents active now stay on duty.
        state = self.learned.state
        return float(state.snapshot(state.time).active_agents)

    def handle_s(self, when: datetime) -> float:
        return self.learned.handle_s(when)

    def patience_s(self, when: datetime) -> float:
        return self.learned.patience_s(when)


@dataclass
class QueueModel:
    """The learners and predictors of one queue."""

    forecast: PriorForecast
    erlang: ErlangAPredictor
    learned: LearnedPredictor | None


class LivePredictor:
    """The ``WaitPredictor`` of every queue, learned online; see the module
    docstring.

    Parameters
    ----------
    calendar : DayCalendar
        Day types and local time of the profiles.
    prior : StaticForecast
        Arrivals, agents, handling time and patience before the feed
        teaches them.
    model : WaitModel or None
        Fitted wait model; its rates replace the prior's handling time and
        patience as the priors of the online means.
    **erlang_options
        Passed to ``ErlangAPredictor``: ``service_level_target``,
        ``service_level_time_s``, ``keep_window_s``, ``horizon_s``.
    """

    def __init__(
        self,
        calendar: DayCalendar,
        prior: StaticForecast,
        model: WaitModel | None = None,
        **erlang_options,
    ):
        self.calendar = calendar
        self.prior = prior
        self.model = model
        self.erlang_options = erlang_options
        self.horizon_s = erlang_options.get("horizon_s", 8 * 3600.0)
        self.prior_rates = (
            model.rates
            if model is not None
            else Rates(prior.mean_handle_s, {}, prior.mean_patience_s)
        )
        self.queues: dict[str, QueueModel] = {}

    def queue(self, name: str) -> QueueModel:
        """Return the learners of queue ``name``, created on first use."""
        found = self.queues.get(name)
        if found is not None:
            return found
        if len(self.queues) >= MAX_QUEUES:
            raise ValidationError(
                "queue", name, f"use one of the {MAX_QUEUES} queues already known"
            )
        if self.model is not None:
            learned = LearnedPredictor(
                self.model, [name], self.calendar, **self.erlang_options
            )
            forecast = PriorForecast(learned.forecasts[name], self.prior)
            # The learned predictor's Erlang A part plans with the prior
            # until the feed has taught the queue's arrivals and staffing.
            learned.erlang.forecasts[name] = forecast
            erlang = learned.erlang
        else:
            learned = None
            rates = RunningRates(self.prior_rates)
            forecast = PriorForecast(LearnedForecast(self.calendar, rates), self.prior)
            erlang = ErlangAPredictor({name: forecast}, **self.erlang_options)
        found = QueueModel(forecast, erlang, learned)
        self.queues[name] = found
        return found

    # Learning

    def observe(self, queue: str, event: QueueEvent) -> None:
        """Apply one event of ``queue``.

        An event older than the last one applied to the queue is applied at
        the last one's time, because the live feed comes from several
        sources (the switch, the agents' desktops) whose clocks and
        delivery are not ordered.
        """
        model = self.queue(queue)
        learned = model.forecast.learned
        if event.time < learned.state.time:
            event = replace(event, time=learned.state.time)
        if event.kind in (AGENT_ON, AGENT_OFF) or event.agent:
            model.forecast.agents_reported = True
        learned.observe(event)

    def ahead(self, queue: str, now: datetime, priority: int = 0) -> int:
        """Return the callers waiting in ``queue`` who would be served before a
        caller of ``priority`` joining at ``now``."""
        state = self.queue(queue).forecast.learned.state
        # The queue's service order, as QueueState.snapshot counts it: a
        # high-priority caller is credited PRIORITY_CREDIT_S of waiting.
        key = now.timestamp()
        if priority >= HIGH_PRIORITY:
            key -= PRIORITY_CREDIT_S
        return sum(1 for _, other, _ in state.waiting.values() if other <= key)

    # The WaitPredictor protocol

    def estimate_wait(
        self,
        queue: str,
        ahead: int,
        now: datetime,
        *,
        priority: int = 0,
        committed: int = 0,
    ) -> WaitEstimate:
        """Estimate the wait of a caller of ``queue`` with ``ahead`` before it.

        The fitted model gives the estimate once the queue has a live state
        to describe (an agent seen). Before that, and without a model,
        Erlang A over the forecast gives it. A wait beyond the forecast horizon (no
        agent on duty) is reported as the horizon with ``p_served`` 0.
        """
        model = self.queue(queue)
        if model.learned is not None and model.forecast.agents_reported:
            estimate = model.learned.estimate_wait(
                queue, ahead, now, priority=priority, committed=committed
            )
        else:
            estimate = model.erlang.estimate_wait(
                queue, ahead, now, priority=priority, committed=committed
            )
        return self._bounded(estimate)

    def _bounded(self, estimate: WaitEstimate) -> WaitEstimate:
        if math.isfinite(estimate.mean_s) and all(
            math.isfinite(value) for value in estimate.quantiles_s.values()
        ):
            return estimate
        quantiles = {p: min(v, self.horizon_s) for p, v in estimate.quantiles_s.items()}
        return replace(
            estimate,
            mean_s=min(estimate.mean_s, self.horizon_s),
            quantiles_s=quantiles,
            p_served=0.0 if math.isinf(estimate.mean_s) else estimate.p_served,
        )

    def capacity(
        self, queue: str, start: datetime, end: datetime, interval_s: float = 900.0
    ) -> list[CapacitySlot]:
        """Return callback capacity per interval (Erlang A over the forecast)."""
        return self.queue(queue).erlang.capacity(queue, start, end, interval_s)

    def keep_probability(self, queue: str, when: datetime, now: datetime) -> float:
        """Return the probability that a callback due at ``when`` is kept."""
        return self.queue(queue).erlang.keep_probability(queue, when, now)

    def nearest_feasible(
        self, queue: str, when: datetime, now: datetime, target: float = 0.9
    ) -> datetime | None:
        """Return the time nearest ``when`` kept with probability >= ``target``."""
        return self.queue(queue).erlang.nearest_feasible(queue, when, now, target)

    # Snapshots

    def to_state(self) -> dict:
        """Return the learned state of every queue as built-in values."""
        return {
            name: {
                "agents_reported": model.forecast.agents_reported,
                "forecast": forecast_to_state(model.forecast.learned),
            }
            for name, model in self.queues.items()
        }

    def restore(self, state: dict) -> None:
        """Load the queues of a ``to_state`` result into this predictor."""
        for name, plain in state.items():
            model = self.queue(name)
            restore_forecast(model.forecast.learned, plain["forecast"])
            model.forecast.agents_reported = plain["agents_reported"]


def load_model(path: str) -> WaitModel:
    """Read the wait model of ``prediction.model_file``; raise ``ConfigError``."""
    try:
        return WaitModel.load(path)
    except ValidationError as exc:
        raise ConfigError(
            "prediction.model_file", path, f"a file from `callsure model fit` ({exc})"
        ) from None


def build_predictor(config) -> LivePredictor:
    """Build the coordinator's ``LivePredictor`` from the configuration.

    Raises
    ------
    ConfigError
        When ``prediction.model_file`` is set but cannot be read as a model.
    """
    if config is None:
        return LivePredictor(DayCalendar(), DEFAULT_FORECAST)
    prediction, prior = config.prediction, config.forecast_prior
    model = None
    if prediction.model_file:
        model = load_model(prediction.model_file)
        logger.info("prediction: wait model %s loaded", prediction.model_file)
    else:
        logger.info("prediction: no model file; Erlang A over online learners")
    return LivePredictor(
        DayCalendar(prediction.country, prediction.zone),
        StaticForecast(
            arrivals_per_s=prior.arrivals_per_s,
            agents_on_duty=prior.agents_on_duty,
            mean_handle_s=prior.handle_s,
            mean_patience_s=prior.patience_s,
        ),
        model,
        service_level_target=prediction.service_level_target,
        service_level_time_s=prediction.service_level_time_s,
        keep_window_s=prediction.keep_window_s,
        horizon_s=prediction.horizon_s,
    )
