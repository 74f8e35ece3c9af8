"""The Erlang A predictor: the ``WaitPredictor`` protocol from queueing formulas.

Each queue is described by a ``Forecast``: the arrival rate and the agents
on duty as functions of time, the mean handling time and the mean
patience. ``StaticForecast`` holds constants; the learned model supplies a
forecast fitted on the event history. From these the predictor computes

- the potential wait of a caller with k ahead (QL-m mean, exact quantiles,
  chance of being served), where later arrivals of a higher priority
  overtake the caller and so slow the queue down;
- per interval, the agents inbound traffic needs to keep its service level
  (served within ``service_level_time_s`` for ``service_level_target`` of
  arrivals, Erlang A) and the callbacks the remaining agents can take;
- the probability that a callback due at a given time reaches an agent
  within ``keep_window_s``, and the nearest time where it is high enough.

All times are timezone-aware UTC datetimes; rates are per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
from scipy import special

from callsure.engine.exceptions import NotFoundError, ValidationError
from callsure.engine.prediction import erlang
from callsure.engine.predictor import CapacitySlot, WaitEstimate

DEFAULT_QUANTILES = (0.5, 0.8, 0.9, 0.95)
# Search step of nearest_feasible; finer than any callback window in use.
FEASIBLE_STEP_S = 60.0
# Stand-in patience for queues without abandonment in keep_probability: the
# Erlang A steady state needs θ > 0, and under overload its queue grows
# as 1/θ, so a huge value would make the computation slow.
LONG_PATIENCE_S = 3 * 3600.0
# Agents are sampled this often inside a capacity interval to average them.
CAPACITY_SAMPLES = 5
# A wait longer than this follows the forecast agents over its course
# instead of the agents at its start (``_follow_staffing``), in steps of
# this length.
STAFFING_STEP_S = 300.0


class Forecast(Protocol):
    """Inputs of the queueing formulas for one queue, as functions of time."""

    def arrival_rate(self, when: datetime, priority: int | None = None) -> float:
        """Arrivals per second expected at ``when``; with ``priority``, only
        the arrivals of that priority or a higher one."""
        ...

    def agents(self, when: datetime) -> float:
        """Agents expected on duty at ``when``."""
        ...

    def handle_s(self, when: datetime) -> float:
        """Mean handling time in seconds."""
        ...

    def patience_s(self, when: datetime) -> float:
        """Mean patience in seconds (``math.inf`` when callers never abandon)."""
        ...


@dataclass
class StaticForecast:
    """A forecast with constant rates, for configuration and tests.

    Attributes
    ----------
    arrivals_per_s : float
        Arrival rate of all priorities together.
    agents_on_duty : float
        Agents on duty at any time.
    mean_handle_s, mean_patience_s : float
        Mean handling time and mean patience.
    priority_shares : dict[int, float]
        Share of arrivals by priority (a larger number is served first);
        empty means every caller has the same priority.
    """

    arrivals_per_s: float
    agents_on_duty: float
    mean_handle_s: float
    mean_patience_s: float = math.inf
    priority_shares: dict[int, float] = field(default_factory=dict)

    def arrival_rate(self, when: datetime, priority: int | None = None) -> float:
        if priority is None or not self.priority_shares:
            return self.arrivals_per_s
        share = sum(s for p, s in self.priority_shares.items() if p >= priority)
        return self.arrivals_per_s * share

    def agents(self, when: datetime) -> float:
        return self.agents_on_duty

    def handle_s(self, when: datetime) -> float:
        return self.mean_handle_s

    def patience_s(self, when: datetime) -> float:
        return self.mean_patience_s


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None:
        raise ValidationError(name, value, "pass a timezone-aware UTC datetime")


class ErlangAPredictor:
    """Wait, capacity and keep-probability predictions from Erlang A.

    Parameters
    ----------
    forecasts : dict[str, Forecast]
        Forecast per queue name.
    service_level_target : float
        Fraction of inbound arrivals to serve within ``service_level_time_s``.
    service_level_time_s : float
        Answer-time target of the inbound service level, in seconds.
    keep_window_s : float
        A callback is kept when an agent takes it within this many seconds
        of its promised time.
    horizon_s : float
        How far ahead ``keep_probability`` and ``nearest_feasible`` look.
    quantiles : tuple of float
        Probabilities reported in ``WaitEstimate.quantiles_s``.
    """

    def __init__(
        self,
        forecasts: dict[str, Forecast],
        *,
        service_level_target: float = 0.8,
        service_level_time_s: float = 20.0,
        keep_window_s: float = 120.0,
        horizon_s: float = 8 * 3600.0,
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
    ):
        if not 0 < service_level_target < 1:
            raise ValidationError(
                "service_level_target", service_level_target, "use a value in (0, 1)"
            )
        self.forecasts = dict(forecasts)
        self.service_level_target = service_level_target
        self.service_level_time_s = service_level_time_s
        self.keep_window_s = keep_window_s
        self.horizon_s = horizon_s
        self.quantiles = tuple(quantiles)

    def forecast(self, queue: str) -> Forecast:
        """Return the forecast of ``queue``; raise NotFoundError if unknown."""
        try:
            return self.forecasts[queue]
        except KeyError:
            raise NotFoundError("queue", queue) from None

    # -- waiting callers -------------------------------------------------

    def service_capacity(self, queue: str, now: datetime, priority: int) -> float:
        """Return the rate (per second) at which the queue moves for a caller.

        Agents free up at nμ, but arrivals of a strictly higher priority
        join ahead of the caller and take part of that rate.
        """
        forecast = self.forecast(queue)
        agents = forecast.agents(now)
        if agents <= 0:
            return 0.0
        rate = agents / forecast.handle_s(now)
        overtaking = forecast.arrival_rate(now, priority + 1)
        # Keep a tenth of the rate: a queue overtaken faster than it drains
        # has no steady state, and the caller is still served eventually.
        return max(rate - overtaking, 0.1 * rate)

    def estimate_wait(
        self,
        queue: str,
        ahead: int,
        now: datetime,
        *,
        priority: int = 0,
        committed: int = 0,
    ) -> WaitEstimate:
        """Estimate the potential wait of a caller with ``ahead`` before it.

        The mean is QL-m; quantiles are exact for exponential service and
        patience (e^{−θV} ~ Beta(nμ/θ, k + 1)). ``committed`` of the
        ``ahead`` are callback promises, which do not abandon: they are
        placed last among the callers ahead, which gives the longest wait
        (``erlang.committed_wait_quantile``).
        """
        _require_aware("now", now)
        if ahead < 0:
            raise ValidationError("ahead", ahead, "use a count >= 0")
        if not 0 <= committed <= ahead:
            raise ValidationError(
                "committed", committed, f"use a count between 0 and ahead ({ahead})"
            )
        forecast = self.forecast(queue)
        rate = self.service_capacity(queue, now, priority)
        if rate <= 0:
            return WaitEstimate(
                mean_s=math.inf,
                quantiles_s={p: math.inf for p in self.quantiles},
                p_served=0.0,
                ahead=ahead,
            )
        patience = forecast.patience_s(now)
        abandon_rate = 0.0 if math.isinf(patience) else 1.0 / patience
        # erlang.* take n and μ apart; only their product nμ matters here.
        mean = erlang.committed_wait_mean(1, rate, abandon_rate, ahead, committed)
        values = erlang.committed_wait_quantiles(
            1, rate, abandon_rate, ahead, committed, self.quantiles
        )
        follow = self._follow_staffing(queue, now, priority, rate)
        quantiles = {
            p: follow(float(v)) for p, v in zip(self.quantiles, values, strict=True)
        }
        served = erlang.p_served(1, rate, abandon_rate, ahead - committed)
        return WaitEstimate(
            mean_s=follow(mean),
            quantiles_s=quantiles,
            p_served=float(served),
            ahead=ahead,
        )

    def _follow_staffing(self, queue: str, now: datetime, priority: int, rate: float):
        """Return a function that maps a wait computed at the rate of ``now``
        to the wait under the forecast's rate over the coming hours.

        The wait stands for ``wait × rate`` services; the returned wait is
        the time the forecast rate takes to give as many, stepping by
        ``STAFFING_STEP_S``. For services that arrive as a Poisson process
        of varying rate this change of time is exact; with abandonment it
        is an approximation. Waits within the first step are unchanged, so
        a constant forecast gives the formulas' values.
        """
        rates: list[float] = []

        def rate_at(step: int) -> float:
            while len(rates) <= step:
                when = now + timedelta(seconds=len(rates) * STAFFING_STEP_S)
                rates.append(self.service_capacity(queue, when, priority))
            return rates[step]

        def follow(wait_s: float) -> float:
            if not math.isfinite(wait_s) or wait_s <= STAFFING_STEP_S:
                return wait_s
            work = wait_s * rate
            done = 0.0
            for step in range(int(self.horizon_s // STAFFING_STEP_S)):
                step_rate = rate if step == 0 else rate_at(step)
                if done + step_rate * STAFFING_STEP_S >= work:
                    return step * STAFFING_STEP_S + (work - done) / step_rate
                done += step_rate * STAFFING_STEP_S
            return math.inf

        return follow

    # -- capacity ----------------------------------------------------------

    def inbound_agents(self, queue: str, when: datetime) -> int:
        """Return the fewest agents that keep the inbound service level at ``when``."""
        forecast = self.forecast(queue)
        arrivals = forecast.arrival_rate(when)
        if arrivals <= 0:
            return 0
        service_rate = 1.0 / forecast.handle_s(when)
        patience = forecast.patience_s(when)
        agents = max(1, math.floor(arrivals / service_rate))
        while agents < 10_000:
            if self._service_level(arrivals, service_rate, patience, agents) >= (
                self.service_level_target
            ):
                return agents
            agents += 1
        return agents

    def _service_level(
        self, arrivals: float, service_rate: float, patience: float, agents: int
    ) -> float:
        if math.isinf(patience):
            return erlang.erlang_c_metrics(
                arrivals, service_rate, agents, self.service_level_time_s
            ).service_level
        return erlang.erlang_a_metrics(
            arrivals, service_rate, 1.0 / patience, agents, self.service_level_time_s
        ).service_level

    def capacity(
        self, queue: str, start: datetime, end: datetime, interval_s: float = 900.0
    ) -> list[CapacitySlot]:
        """Return callback capacity per interval in ``[start, end)``.

        Each slot's agents are the forecast averaged over the interval; the
        inbound agents are those Erlang A needs at the interval's middle.
        """
        _require_aware("start", start)
        _require_aware("end", end)
        if interval_s <= 0:
            raise ValidationError("interval_s", interval_s, "use a positive length")
        if end <= start:
            raise ValidationError("end", end, f"use a time after start {start}")
        forecast = self.forecast(queue)
        slots = []
        step = timedelta(seconds=interval_s)
        slot_start = start
        while slot_start < end:
            slot_end = min(slot_start + step, end)
            length_s = (slot_end - slot_start).total_seconds()
            samples = [
                slot_start + (slot_end - slot_start) * ((i + 0.5) / CAPACITY_SAMPLES)
                for i in range(CAPACITY_SAMPLES)
            ]
            agents = sum(forecast.agents(t) for t in samples) / CAPACITY_SAMPLES
            middle = slot_start + (slot_end - slot_start) / 2
            needed = self.inbound_agents(queue, middle)
            spare_agents = max(0.0, agents - needed)
            callbacks = math.floor(spare_agents * length_s / forecast.handle_s(middle))
            slots.append(
                CapacitySlot(
                    start=slot_start,
                    end=slot_end,
                    agents=agents,
                    inbound_agents=float(needed),
                    callbacks=callbacks,
                )
            )
            slot_start = slot_end
        return slots

    # -- callbacks ---------------------------------------------------------

    def keep_probability(self, queue: str, when: datetime, now: datetime) -> float:
        """Return the probability that a callback due at ``when`` is kept.

        The callback takes its place in line behind the inbound callers
        already waiting at ``when``, so that nobody who waited longer is
        overtaken. It is kept when it reaches an agent within
        ``keep_window_s``: with the steady-state Erlang A queue π_k found
        on arrival, P = P(no wait) + Σ_k π_k P(V_k <= window). Times before
        ``now`` or beyond the horizon get 0.
        """
        _require_aware("when", when)
        _require_aware("now", now)
        lead_s = (when - now).total_seconds()
        if lead_s < 0 or lead_s > self.horizon_s:
            return 0.0
        forecast = self.forecast(queue)
        agents = math.floor(forecast.agents(when) + 1e-9)
        if agents < 1:
            return 0.0
        # NOTE: callbacks already booked near ``when`` are not counted here;
        # the scheduler must keep bookings within capacity() for this to hold.
        arrivals = forecast.arrival_rate(when)
        if arrivals <= 0:
            return 1.0
        service_rate = 1.0 / forecast.handle_s(when)
        patience = forecast.patience_s(when)
        # Exponential patience keeps Erlang A's steady state finite under
        # overload; a queue without abandonment gets a long patience instead.
        abandon_rate = 1.0 / (patience if math.isfinite(patience) else LONG_PATIENCE_S)
        waiting = erlang.queue_length_distribution(
            arrivals, service_rate, abandon_rate, agents
        )
        ahead = np.arange(waiting.size)
        late = special.betainc(
            agents * service_rate / abandon_rate,
            ahead + 1.0,
            math.exp(-abandon_rate * self.keep_window_s),
        )
        p_late = float(np.sum(waiting * late))
        return min(1.0, max(0.0, 1.0 - p_late))

    def nearest_feasible(
        self, queue: str, when: datetime, now: datetime, target: float = 0.9
    ) -> datetime | None:
        """Return the time nearest ``when``, not before ``now``, kept with
        probability >= ``target``; ``None`` when the horizon holds none.

        Candidates are ``when`` and then ``when`` ± k minutes, the later one
        first on a tie.
        """
        _require_aware("when", when)
        _require_aware("now", now)
        if not 0 < target <= 1:
            raise ValidationError("target", target, "use a probability in (0, 1]")
        start = max(when, now)
        if self.keep_probability(queue, start, now) >= target:
            return start
        step = timedelta(seconds=FEASIBLE_STEP_S)
        limit = now + timedelta(seconds=self.horizon_s)
        offset = step
        while start + offset <= limit or start - offset >= now:
            for candidate in (start + offset, start - offset):
                if now <= candidate <= limit and (
                    self.keep_probability(queue, candidate, now) >= target
                ):
                    return candidate
            offset += step
        return None
