"""`callsure model fit` and `callsure model score` on the real call log."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from callsure.actors.cli import cli

# Each module fits the model on two weeks of the log once, about 15 s of CPU.
pytestmark = pytest.mark.slow

FIGURES = (
    "rmse_s",
    "mae_s",
    "bias_s",
    "rrase",
    "coverage_p90",
    "coverage_p90_3plus_ahead",
    "pinball_p90",
)


@pytest.fixture(scope="module")
def model_file(bank_log, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "wait.npz"
    result = CliRunner().invoke(
        cli, ["model", "fit", str(bank_log), "--out", str(path), "--fit-days", "1-14"]
    )
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.stdout)
    assert fitted["fit_dates"] == ["1999-02-01", "1999-02-14"]
    return path


@pytest.fixture(scope="module")
def scored(model_file, bank_log):
    result = CliRunner().invoke(
        cli, ["model", "score", str(model_file), str(bank_log), "--score-days", "15-21"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_score_prints_every_figure(scored):
    for name in FIGURES:
        assert name in scored
        assert name in scored["baseline"]
        assert name in scored["recalibrated_baseline"]


def test_score_covers_last_week(scored):
    assert scored["score_dates"] == ["1999-02-15", "1999-02-21"]
    assert scored["callers"] > 3000


def test_score_beats_strict_ql_m(scored):
    assert scored["rmse_s"] < scored["baseline"]["rmse_s"]
    assert scored["pinball_p90"] < scored["baseline"]["pinball_p90"]


def test_reversed_day_range_rejected(bank_log, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "fit",
            str(bank_log),
            "--out",
            str(tmp_path / "m"),
            "--fit-days",
            "9-2",
        ],
    )
    assert result.exit_code == 2
    assert "9-2" in result.output


def test_score_days_without_calls_rejected(model_file, bank_log):
    result = CliRunner().invoke(
        cli, ["model", "score", str(model_file), str(bank_log), "--score-days", "40-41"]
    )
    assert result.exit_code == 2
    assert "--score-days" in result.output


def test_score_rejects_non_model_file(bank_log, tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_text("not a model")
    result = CliRunner().invoke(cli, ["model", "score", str(bogus), str(bank_log)])
    assert result.exit_code == 2
    assert "callsure model fit" in result.output


def test_fit_rejects_too_few_days(bank_log, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "fit",
            str(bank_log),
            "--out",
            str(tmp_path / "m"),
            "--fit-days",
            "1-2",
        ],
    )
    assert result.exit_code == 2
    assert "fit days" in result.output
