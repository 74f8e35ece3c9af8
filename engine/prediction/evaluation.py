"""Scoring of wait predictions on a call history against the classic ones.

Scores cover callers who queued and were served, the wait a prediction
announces to a caller. Figures: RMSE, MAE and bias (predicted minus
actual) of the mean in seconds, RRASE (RMSE over the mean actual wait),
the coverage of the announced 90 % quantile overall and for callers with
three or more ahead, and its pinball loss.

References computed in the same run on the same callers:

- ``baseline``: strict QL-m, with the priority-aware position, agents
  active in the 30 minutes before the caller queued, and handling and
  patience fitted on the fitting days only; its 90 % quantile is QL-m
  times the factor that covered 90 % on held-out fitting days;
- ``recalibrated_baseline``: a + b · QL-m fitted on the fitting days,
  with the same 90 % quantile as the baseline.
"""

from __future__ import annotations

import numpy as np

from callsure.engine.prediction.model import QueuedCallers, WaitModel

THREE_AHEAD = 3


def pinball_loss(
    actual: np.ndarray, predicted: np.ndarray, probability: float
) -> float:
    """Return the mean pinball (quantile) loss of ``predicted`` at ``probability``."""
    residual = actual - predicted
    return float(
        np.mean(np.maximum(probability * residual, (probability - 1) * residual))
    )


def figures(
    actual: np.ndarray, mean: np.ndarray, upper: np.ndarray, ahead: np.ndarray
) -> dict[str, float]:
    """Return the scoring figures of one predictor."""
    error = mean - actual
    rmse = float(np.sqrt(np.mean(error**2)))
    many = ahead >= THREE_AHEAD
    return {
        "rmse_s": rmse,
        "mae_s": float(np.mean(np.abs(error))),
        "bias_s": float(np.mean(error)),
        "rrase": rmse / float(np.mean(actual)),
        "coverage_p90": float(np.mean(actual <= upper)),
        "coverage_p90_3plus_ahead": float(np.mean(actual[many] <= upper[many]))
        if many.any()
        else float("nan"),
        "pinball_p90": pinball_loss(actual, upper, 0.9),
    }


def score(model: WaitModel, callers: QueuedCallers, mask: np.ndarray) -> dict:
    """Score ``model`` and the references on the served callers in ``mask``."""
    selected = mask & callers.served
    actual = callers.waits[selected]
    ahead = callers.ahead[selected]
    predicted = model.predict(callers.matrix(model.rates)[selected], ahead)
    ql_m = callers.ql_m(model.rates)[selected]
    intercept, slope = model.baseline["recalibration"]
    ql_m_upper = ql_m * model.baseline["ql_m_p90_factor"]
    result = figures(actual, predicted["mean"], predicted["0.9"], ahead)
    result["callers"] = int(selected.sum())
    result["baseline"] = figures(actual, ql_m, ql_m_upper, ahead)
    result["recalibrated_baseline"] = figures(
        actual, intercept + slope * ql_m, ql_m_upper, ahead
    )
    base = result["baseline"]
    result["rmse_ratio_to_baseline"] = result["rmse_s"] / base["rmse_s"]
    result["rmse_ratio_to_recalibrated"] = (
        result["rmse_s"] / result["recalibrated_baseline"]["rmse_s"]
    )
    result["pinball_ratio_to_baseline"] = result["pinball_p90"] / base["pinball_p90"]
    return result
