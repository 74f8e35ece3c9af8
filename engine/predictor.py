"""The interface through which the scheduler asks the prediction model.

The callback scheduler depends only on ``WaitPredictor``; the Erlang A
model and the learned model in ``callsure.engine.prediction`` implement it.
All times are timezone-aware UTC datetimes; durations are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class WaitEstimate:
    """The potential wait of one caller, as a distribution.

    Attributes
    ----------
    mean_s : float
        Mean potential wait in seconds.
    quantiles_s : dict[float, float]
        Wait in seconds by probability, for example ``{0.5: 40.0, 0.9: 95.0}``.
    p_served : float
        Probability that the caller is served rather than abandons.
    ahead : int
        Callers ahead of this one in the queue when the estimate was made.
    """

    mean_s: float
    quantiles_s: dict[float, float] = field(default_factory=dict)
    p_served: float = 1.0
    ahead: int = 0


@dataclass(frozen=True)
class CapacitySlot:
    """Callback capacity of one queue in one interval ``[start, end)``.

    Attributes
    ----------
    agents : float
        Agents expected on duty, on average over the interval.
    inbound_agents : float
        Agents that inbound traffic needs to keep its service-level target.
    callbacks : int
        Callbacks that can be released in the interval without lowering the
        inbound service level: the spare agent time divided by the mean
        handling time, rounded down.
    """

    start: datetime
    end: datetime
    agents: float
    inbound_agents: float
    callbacks: int


class WaitPredictor(Protocol):
    """What the scheduler needs from a prediction model."""

    def estimate_wait(
        self,
        queue: str,
        ahead: int,
        now: datetime,
        *,
        priority: int = 0,
        committed: int = 0,
    ) -> WaitEstimate:
        """Estimate the wait of a caller with ``ahead`` callers before it,
        ``committed`` of whom are callback promises that never abandon."""
        ...

    def capacity(
        self, queue: str, start: datetime, end: datetime, interval_s: float = 900.0
    ) -> list[CapacitySlot]:
        """Callback capacity per interval between ``start`` and ``end``."""
        ...

    def keep_probability(self, queue: str, when: datetime, now: datetime) -> float:
        """Probability that a callback promised for ``when`` reaches an agent
        inside its window."""
        ...

    def nearest_feasible(
        self, queue: str, when: datetime, now: datetime, target: float = 0.9
    ) -> datetime | None:
        """The time nearest ``when`` (not before ``now``) whose keep probability
        is at least ``target``, or ``None`` when no such time exists within the
        forecast horizon."""
        ...
