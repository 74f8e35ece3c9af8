"""Wait-time prediction: exact queueing formulas and a model learned online.

``ErlangAPredictor`` answers the scheduler's ``WaitPredictor`` protocol from
Erlang A with given rates; ``LearnedPredictor`` answers it from rates and a
quantile model learned on the event history.
"""

from callsure.engine.prediction.erlang_a_predictor import (
    ErlangAPredictor,
    Forecast,
    StaticForecast,
)

__all__ = ["ErlangAPredictor", "Forecast", "StaticForecast"]
