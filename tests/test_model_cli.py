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
    assert "invalid fit days '2 days with calls'" in result.output
    assert "fit on at least" in result.output


def test_score_rejects_empty_file_without_allow_pickle(bank_log, tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    result = CliRunner().invoke(cli, ["model", "score", str(empty), str(bank_log)])
    assert result.exit_code == 2
    assert "not a model file written by `callsure model fit`" in result.output
    assert "allow_pickle" not in result.output


def test_fit_checks_output_folder_before_fitting(bank_log, tmp_path):
    out = tmp_path / "missing" / "wait.npz"
    result = CliRunner().invoke(cli, ["model", "fit", str(bank_log), "--out", str(out)])
    assert result.exit_code == 2
    assert f"folder {out.parent} does not exist" in result.output


def test_fit_rejects_unknown_zone(bank_log, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["model", "fit", str(bank_log), "--out", str(tmp_path / "m"), "--zone", "X/Y"],
    )
    assert result.exit_code == 2
    assert "zone 'X/Y'" in result.output


def test_json_has_null_for_non_finite_figures():
    from callsure.actors.model_cli import _json_safe

    figures = {"rmse_s": float("nan"), "by_ahead": [1.5, float("inf")], "n": 3}
    text = json.dumps(_json_safe(figures), allow_nan=False)
    assert json.loads(text) == {"rmse_s": None, "by_ahead": [1.5, None], "n": 3}
