"""The inbound forecast net of the callers who leave the queue with a callback.

The online forecast counts every caller who reaches the queue as inbound
demand, including those who then take a callback. Erlang A's capacity
reserves agents for that whole demand and offers callbacks only the rest,
so each callback would be counted twice: once as an inbound caller to
keep within the service level, once as a callback. ``NetInboundForecast``
lowers the arrival rate by the share of recent callers who took a
callback, measured online, and passes everything else through unchanged.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

# Callers of the last hour give the callback take-up share.
TAKE_UP_WINDOW_S = 3600.0


class TakeUp:
    """Share of recent queue arrivals that left with a callback."""

    def __init__(self, window_s: float = TAKE_UP_WINDOW_S):
        self.window_s = window_s
        self._arrivals: deque[float] = deque()
        self._accepted: deque[float] = deque()

    def arrival(self, time: float) -> None:
        """Count one caller reaching the queue at ``time`` (epoch seconds)."""
        self._arrivals.append(time)
        self._trim(time)

    def accepted(self, time: float) -> None:
        """Count one caller leaving the queue with a callback at ``time``."""
        self._accepted.append(time)
        self._trim(time)

    def _trim(self, time: float) -> None:
        for times in (self._arrivals, self._accepted):
            while times and times[0] < time - self.window_s:
                times.popleft()

    def share(self) -> float:
        if not self._arrivals:
            return 0.0
        return min(1.0, len(self._accepted) / len(self._arrivals))


class NetInboundForecast:
    """A ``Forecast`` whose arrivals exclude the callback take-up share.

    Parameters
    ----------
    forecast : Forecast
        The online forecast (``LearnedForecast``).
    take_up : TakeUp
    """

    def __init__(self, forecast, take_up: TakeUp):
        self.forecast = forecast
        self.take_up = take_up

    def arrival_rate(self, when: datetime, priority: int | None = None) -> float:
        rate = self.forecast.arrival_rate(when, priority)
        return rate * (1.0 - self.take_up.share())

    def agents(self, when: datetime) -> float:
        return self.forecast.agents(when)

    def handle_s(self, when: datetime) -> float:
        return self.forecast.handle_s(when)

    def patience_s(self, when: datetime) -> float:
        return self.forecast.patience_s(when)
