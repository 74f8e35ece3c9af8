"""The prediction model the coordinator plans with, built from the config.

NOTE: the [prediction] section sets the service level and the horizons but
no per-queue forecast, and the live server does not feed the learned model
(``prediction.model_file``) yet. So every queue gets the constant Erlang A
forecast below, and waits and capacities are indicative, not fitted.
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
    """Build the coordinator's ``WaitPredictor`` from the [prediction] section."""
    if config is None:
        return DefaultForecastPredictor({}, DEFAULT_FORECAST)
    prediction = config.prediction
    return DefaultForecastPredictor(
        {},
        DEFAULT_FORECAST,
        service_level_target=prediction.service_level_target,
        service_level_time_s=prediction.service_level_time_s,
        keep_window_s=prediction.keep_window_s,
        horizon_s=prediction.horizon_s,
    )
