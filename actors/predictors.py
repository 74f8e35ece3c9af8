"""The prediction model the coordinator plans with, built from the config.

NOTE: the configuration has no forecast section yet, so every queue gets
the same constant Erlang A forecast below until the learned model is
wired in. Waits and capacities are then indicative, not fitted.
"""

from __future__ import annotations

from callsure.engine.prediction import ErlangAPredictor, StaticForecast

DEFAULT_FORECAST = StaticForecast(
    arrivals_per_s=0.02,
    agents_on_duty=10.0,
    mean_handle_s=300.0,
    mean_patience_s=180.0,
)


class DefaultForecastPredictor(ErlangAPredictor):
    """An ``ErlangAPredictor`` that uses ``default`` for unconfigured queues."""

    def __init__(self, forecasts, default: StaticForecast, **options):
        super().__init__(forecasts, **options)
        self.default = default

    def forecast(self, queue: str):
        return self.forecasts.get(queue, self.default)


def build_predictor(config) -> DefaultForecastPredictor:
    """Build the coordinator's ``WaitPredictor`` from ``config``."""
    return DefaultForecastPredictor({}, DEFAULT_FORECAST)
