"""``callsure model``: fit the wait model on a call log and score it.

Days are numbered from 1, the first local date in the log; a range is
``FIRST-LAST`` inclusive. The defaults fit on days 1-14 and score on days
15-21, a time split: a model is never scored on the days it was fitted on.
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import date, timedelta
from pathlib import Path

import click

from callsure.engine.calllog import read_call_log
from callsure.engine.exceptions import CallsureError, ValidationError

logger = logging.getLogger(__name__)


def _day_range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        bounds = (int(first), int(last if sep else first))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a day range: use FIRST-LAST, such as 1-14"
        ) from None
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise click.BadParameter(
            f"{text!r} is not a day range: days count from 1 and LAST >= FIRST"
        )
    return bounds


def _json_safe(value):
    """Return ``value`` with NaN and infinities replaced by None, which JSON
    allows (it has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _check_output_folder(out_path: str) -> None:
    # Checked before fitting, which takes minutes, rather than at the write.
    folder = Path(out_path).absolute().parent
    if not folder.is_dir():
        raise click.BadParameter(
            f"folder {folder} does not exist: create it or choose another file",
            param_hint="--out",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(
            f"folder {folder} is not writable: choose another file",
            param_hint="--out",
        )


def _dates(first_date: date, bounds: tuple[int, int]) -> tuple[date, date]:
    return (
        first_date + timedelta(days=bounds[0] - 1),
        first_date + timedelta(days=bounds[1] - 1),
    )


def _load_callers(log_path: str, country: str, zone: str):
    # Imported here: numpy and scipy would slow `callsure --help`.
    from callsure.engine.prediction.features import DayCalendar
    from callsure.engine.prediction.model import QueuedCallers

    # The reader logs how many rows it dropped and why.
    log = read_call_log(log_path, zone=zone)
    if not log.records:
        raise click.UsageError(
            f"{log_path} contains no usable calls: check the file and its format"
        )
    calendar = DayCalendar(country=country, zone=zone)
    callers = QueuedCallers.from_records(log.records, calendar)
    first_date = calendar.local(log.records[0].vru_entry).date()
    return callers, first_date


@click.group("model")
def model():
    """Fit and score the learned wait-time model."""


@model.command("fit")
@click.argument(
    "log_path", metavar="LOG.tsv", type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Model file to write (.npz).",
)
@click.option(
    "--fit-days",
    default="1-14",
    show_default=True,
    callback=lambda c, p, v: _day_range(v),
    help="Days of the log to fit on, FIRST-LAST, counted from 1.",
)
@click.option(
    "--country",
    default="IL",
    show_default=True,
    help="Country whose public holidays are a day type (ISO code).",
)
@click.option(
    "--zone",
    default="Asia/Jerusalem",
    show_default=True,
    help="IANA time zone of the log's local times.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the row sampling.")
def fit_command(log_path, out_path, fit_days, country, zone, seed):
    """Fit the wait model on LOG.tsv and write it to --out."""
    from callsure.engine.prediction.model import WaitModel

    _check_output_folder(out_path)
    try:
        callers, first_date = _load_callers(log_path, country, zone)
        first, last = _dates(first_date, fit_days)
        wait_model = WaitModel.fit(callers, callers.on_dates(first, last), seed=seed)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    except CallsureError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        wait_model.save(out_path)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {out_path} ({exc.strerror}): choose another --out"
        ) from None
    click.echo(
        json.dumps(
            _json_safe(
                {
                    "model": str(out_path),
                    "fit_dates": [first.isoformat(), last.isoformat()],
                    "rates": wait_model.rates.as_dict(),
                    "p90_factors_by_ahead": wait_model.factors.tolist(),
                    "baseline": wait_model.baseline,
                }
            ),
            indent=2,
            allow_nan=False,
        )
    )


@model.command("score")
@click.argument(
    "model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False)
)
@click.argument(
    "log_path", metavar="LOG.tsv", type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--score-days",
    default="15-21",
    show_default=True,
    callback=lambda c, p, v: _day_range(v),
    help="Days of the log to score on, FIRST-LAST, counted from 1.",
)
def score_command(model_path, log_path, score_days):
    """Score MODEL on LOG.tsv against strict and recalibrated QL-m; print JSON."""
    from callsure.engine.prediction.evaluation import score
    from callsure.engine.prediction.model import WaitModel

    try:
        wait_model = WaitModel.load(model_path)
        callers, first_date = _load_callers(
            log_path, wait_model.country, wait_model.zone
        )
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    except CallsureError as exc:
        raise click.ClickException(str(exc)) from None
    first, last = _dates(first_date, score_days)
    mask = callers.on_dates(first, last)
    if not (mask & callers.served).any():
        raise click.UsageError(
            f"no served, queued caller between {first} and {last}: check --score-days"
        )
    result = score(wait_model, callers, mask)
    result["score_dates"] = [first.isoformat(), last.isoformat()]
    # A metric without data (no caller in a group) is NaN, which is not
    # JSON; it is written as null.
    click.echo(json.dumps(_json_safe(result), indent=2, allow_nan=False))
