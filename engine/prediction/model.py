"""The learned wait model: boosted trees over queue features, with calibration.

``WaitModel.fit`` replays a call history, takes the features of every
queued caller at the moment it joined, and fits on callers who were
served (the wait that a prediction announces):

- a boosted least-squares model of the wait (the announced mean);
- boosted pinball-loss models of the 50 % and 90 % quantiles, whose
  90 % values are then widened or narrowed by a factor per group of
  callers ahead (0, 1–2, 3 or more), chosen on the last fitting days held
  out from a first fit so that 90 % of them were served within it
  (split conformal calibration); the final models are refitted on every
  fitting day and keep those factors.

The model is saved to ``.npz`` plus JSON metadata, never to a pickle.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from callsure.engine.calllog import CallRecord
from callsure.engine.exceptions import ValidationError
from callsure.engine.prediction.boosting import BoostedTrees, BoostingParameters
from callsure.engine.prediction.features import (
    FEATURE_NAMES,
    DayCalendar,
    Rates,
    feature_vector,
    strict_ql_m,
)
from callsure.engine.prediction.state import (
    Snapshot,
    events_from_records,
    replay_snapshots,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
QUANTILES = (0.5, 0.9)
# Groups of callers ahead that get their own calibration factor: a caller
# with many ahead has a less variable wait than one near the head.
AHEAD_GROUPS = ((0, 0), (1, 2), (3, 10**9))
# Fitting days held out for the calibration of the quantile factors.
CALIBRATION_DAYS = 3


@dataclass
class QueuedCallers:
    """Callers who queued, with what the queue looked like when they joined.

    Attributes
    ----------
    records : list[CallRecord]
        The callers, in order of queue entry.
    snapshots : list[Snapshot]
        Queue state just before each caller joined.
    local_dates : list[date]
        Local date of each queue entry.
    day_types : list[str]
        Day type of each queue entry.
    calendar : DayCalendar
        Calendar that gave the dates and day types.
    history : list[CallRecord]
        Every call replayed, queued or not, for fitting the rates.
    """

    records: list[CallRecord]
    snapshots: list[Snapshot]
    local_dates: list[date]
    day_types: list[str]
    calendar: DayCalendar
    history: list[CallRecord]

    @classmethod
    def from_records(
        cls, records: Iterable[CallRecord], calendar: DayCalendar
    ) -> QueuedCallers:
        """Replay ``records`` and collect every queued caller's snapshot."""
        records = list(records)
        by_key = {record.line: record for record in records}
        callers, snapshots, dates, day_types = [], [], [], []
        for event, snapshot in replay_snapshots(events_from_records(records)):
            record = by_key[event.call_id]
            callers.append(record)
            snapshots.append(snapshot)
            dates.append(calendar.local(record.q_start).date())
            day_types.append(calendar.day_type(record.q_start))
        return cls(callers, snapshots, dates, day_types, calendar, records)

    def matrix(self, rates: Rates) -> np.ndarray:
        """Return the feature matrix (callers, ``len(FEATURE_NAMES)``)."""
        rows = [
            feature_vector(
                snapshot,
                priority=record.priority,
                call_type=record.type,
                local_time=self.calendar.local(record.q_start),
                day_type=day_type,
                rates=rates,
            )
            for record, snapshot, day_type in zip(
                self.records, self.snapshots, self.day_types, strict=True
            )
        ]
        return np.vstack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))

    def ql_m(self, rates: Rates) -> np.ndarray:
        """Return the strict QL-m prediction of every caller."""
        return np.array([strict_ql_m(s, rates) for s in self.snapshots])

    @property
    def waits(self) -> np.ndarray:
        return np.array([record.wait_s for record in self.records])

    @property
    def served(self) -> np.ndarray:
        return np.array([record.served for record in self.records], dtype=bool)

    @property
    def ahead(self) -> np.ndarray:
        return np.array([s.ahead for s in self.snapshots])

    def on_dates(self, first: date, last: date) -> np.ndarray:
        """Return a mask of callers who queued between two local dates, inclusive."""
        return np.array([first <= d <= last for d in self.local_dates], dtype=bool)


def ahead_group(ahead: np.ndarray) -> np.ndarray:
    """Return the index in ``AHEAD_GROUPS`` of each count of callers ahead."""
    groups = np.zeros(np.shape(ahead), dtype=int)
    for index, (low, high) in enumerate(AHEAD_GROUPS):
        groups[(ahead >= low) & (ahead <= high)] = index
    return groups


def coverage_factor(
    predicted: np.ndarray, actual: np.ndarray, probability: float
) -> float:
    """Return the factor s for which ``actual <= s * predicted`` holds for a
    share ``probability`` of rows (the split conformal quantile of ratios)."""
    ratios = np.sort(actual / np.maximum(predicted, 1.0))
    if ratios.size == 0:
        return 1.0
    rank = min(ratios.size - 1, int(np.ceil(probability * (ratios.size + 1))) - 1)
    return float(ratios[max(rank, 0)])


@dataclass
class WaitModel:
    """Mean and quantile models of the wait of a queued, served caller."""

    rates: Rates
    mean: BoostedTrees
    quantiles: dict[float, BoostedTrees]
    factors: np.ndarray
    baseline: dict
    country: str = "IL"
    zone: str = "Asia/Jerusalem"

    @staticmethod
    def _fit_quantile(
        matrix: np.ndarray, waits: np.ndarray, probability: float, seed: int
    ) -> BoostedTrees:
        parameters = BoostingParameters(
            quantile=probability, depth=3, rounds=300, seed=seed
        )
        return BoostedTrees.fit(matrix, waits, parameters)

    @classmethod
    def _fit_models(
        cls, matrix: np.ndarray, waits: np.ndarray, seed: int
    ) -> tuple[BoostedTrees, dict[float, BoostedTrees]]:
        mean = BoostedTrees.fit(
            matrix, waits, BoostingParameters(depth=2, rounds=400, seed=seed)
        )
        quantiles = {p: cls._fit_quantile(matrix, waits, p, seed) for p in QUANTILES}
        return mean, quantiles

    @classmethod
    def fit(
        cls, callers: QueuedCallers, fit_mask: np.ndarray, seed: int = 0
    ) -> WaitModel:
        """Fit on the callers selected by ``fit_mask`` (who must span several days).

        Rates come from the same callers' records; calibration factors from
        the last ``CALIBRATION_DAYS`` of them.
        """
        fit_dates = sorted(
            {d for d, keep in zip(callers.local_dates, fit_mask, strict=True) if keep}
        )
        if len(fit_dates) <= CALIBRATION_DAYS:
            count = len(fit_dates)
            raise ValidationError(
                "fit days",
                f"{count} day{'' if count == 1 else 's'} with calls",
                f"fit on at least {CALIBRATION_DAYS + 1} days with calls, the "
                f"last {CALIBRATION_DAYS} of them for calibration",
            )
        first, last = fit_dates[0], fit_dates[-1]
        rates = Rates.fit(
            record
            for record in callers.history
            if first <= callers.calendar.local(record.vru_entry).date() <= last
        )
        matrix = callers.matrix(rates)
        waits = callers.waits
        usable = fit_mask & callers.served

        # Calibrate the 90 % factors on held-out days of a first fit.
        cut = fit_dates[-CALIBRATION_DAYS]
        early = usable & np.array([d < cut for d in callers.local_dates])
        late = usable & ~early
        held_out = cls._fit_quantile(matrix[early], waits[early], 0.9, seed)
        predicted = held_out.predict(matrix[late])
        groups = ahead_group(callers.ahead[late])
        factors = np.array(
            [
                coverage_factor(predicted[groups == g], waits[late][groups == g], 0.9)
                for g in range(len(AHEAD_GROUPS))
            ]
        )
        logger.info("90 %% quantile factors by callers ahead: %s", factors)

        # The classic references, calibrated on the same fitting days: a
        # linear recalibration of QL-m, and the factor that makes scaled
        # QL-m a 90 % quantile on the held-out days.
        ql_m = callers.ql_m(rates)
        design = np.column_stack([np.ones(usable.sum()), ql_m[usable]])
        intercept, slope = np.linalg.lstsq(design, waits[usable], rcond=None)[0]
        baseline = {
            "recalibration": [float(intercept), float(slope)],
            "ql_m_p90_factor": coverage_factor(ql_m[late], waits[late], 0.9),
        }

        mean, quantiles = cls._fit_models(matrix[usable], waits[usable], seed)
        calendar = callers.calendar
        return cls(
            rates, mean, quantiles, factors, baseline, calendar.country, calendar.zone
        )

    def predict(self, matrix: np.ndarray, ahead: np.ndarray) -> dict[str, np.ndarray]:
        """Return the mean and calibrated quantiles for each row of ``matrix``.

        Keys are ``"mean"`` and the probabilities as strings ("0.5", "0.9").
        Quantiles are kept in increasing order and never below zero.
        """
        result = {"mean": np.maximum(self.mean.predict(matrix), 0.0)}
        median = np.maximum(self.quantiles[0.5].predict(matrix), 0.0)
        upper = self.quantiles[0.9].predict(matrix) * self.factors[ahead_group(ahead)]
        result["0.5"] = median
        result["0.9"] = np.maximum(upper, median)
        return result

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (.npz); return the path written."""
        path = Path(path)
        arrays = {**self.mean.to_arrays("mean_")}
        for probability, trees in self.quantiles.items():
            arrays.update(trees.to_arrays(f"q{probability}_"))
        metadata = {
            "format_version": FORMAT_VERSION,
            "features": list(FEATURE_NAMES),
            "quantiles": list(self.quantiles),
            "rates": self.rates.as_dict(),
            "factors": self.factors.tolist(),
            "baseline": self.baseline,
            "country": self.country,
            "zone": self.zone,
        }
        arrays["metadata"] = np.frombuffer(
            json.dumps(metadata).encode(), dtype=np.uint8
        )
        with path.open("wb") as handle:
            np.savez_compressed(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> WaitModel:
        """Read a model written by ``save``."""
        path = Path(path)
        not_a_model = ValidationError(
            "model",
            str(path),
            "not a model file written by `callsure model fit`: pass one, or "
            "fit one with `callsure model fit LOG.tsv --out FILE.npz`",
        )
        # NumPy raises EOFError on an empty file, BadZipFile on a damaged
        # archive and ValueError on other content. Its own messages suggest
        # allow_pickle, which must stay off for files from elsewhere.
        unreadable = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
        try:
            arrays = np.load(path, allow_pickle=False)
            metadata = json.loads(arrays["metadata"].tobytes().decode())
        except unreadable:
            raise not_a_model from None
        if not isinstance(metadata, dict):
            raise not_a_model
        if metadata.get("format_version") != FORMAT_VERSION or metadata.get(
            "features"
        ) != list(FEATURE_NAMES):
            raise ValidationError(
                "model", str(path), "refit it: it was written by another version"
            )
        try:
            return cls(
                rates=Rates(**metadata["rates"]),
                mean=BoostedTrees.from_arrays(arrays, "mean_"),
                quantiles={
                    float(p): BoostedTrees.from_arrays(arrays, f"q{float(p)}_")
                    for p in metadata["quantiles"]
                },
                factors=np.asarray(metadata["factors"]),
                baseline=metadata["baseline"],
                country=metadata["country"],
                zone=metadata["zone"],
            )
        except (*unreadable, TypeError):
            raise not_a_model from None
