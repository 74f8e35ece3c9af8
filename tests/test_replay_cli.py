"""``callsure replay`` on the real call log: table, JSON, plots, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from callsure.actors.cli import cli
from callsure.actors.replay_cli import demo_log_path, parse_days, read_log
from callsure.engine.calllog import read_call_log

# Saturday 6 February 1999: the smallest day of the log, a few seconds.
SATURDAY = "6"


@pytest.mark.slow
def test_replay_writes_table_json_and_plot(tmp_path):
    # No LOG argument: the gzip'd log shipped with the demo is the default.
    json_path = tmp_path / "replay.json"
    plots = tmp_path / "plots"
    result = CliRunner().invoke(
        cli,
        [
            "--log-level",
            "WARNING",
            "replay",
            "--days",
            SATURDAY,
            "--json",
            str(json_path),
            "--plot-dir",
            str(plots),
            "--store-dir",
            str(tmp_path / "store"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1999-02-06 Sat" in result.output
    assert "redial_cut:" in result.output
    report = json.loads(json_path.read_text())
    assert [day["day"] for day in report["days"]] == ["1999-02-06"]
    assert report["total"]["baseline"]["calls"]["offered"] > 100
    assert report["options"]["threshold_s"] == 60.0
    png = plots / "replay-1999-02-06.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "store" / "callbacks-1999-02-06.db").exists()


@pytest.mark.slow
def test_replay_omits_callback_lines(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "callsure.actors.cli", "replay", "--days", SATURDAY]
        + ["--store-dir", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "1999-02-06 Sat" in result.stdout
    assert "callsure.engine" not in result.stderr


@pytest.mark.slow
def test_demo_log_matches_shared_log(bank_log):
    shipped = read_log(demo_log_path())
    plain = read_call_log(bank_log)
    assert demo_log_path().suffix == ".gz"
    assert len(shipped.records) == len(plain.records)
    assert shipped.dropped == plain.dropped


def test_read_log_rejects_broken_gzip(tmp_path):
    broken = tmp_path / "calls.tsv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(click.UsageError, match="not a readable gzip file"):
        read_log(broken)


@pytest.mark.parametrize(
    ("text", "days"),
    [("all", [1, 2, 3]), ("2-3", [2, 3]), ("3,1", [1, 3]), ("2", [2])],
)
def test_parse_days_accepts_forms(text, days):
    assert parse_days(text, 3) == days


@pytest.mark.parametrize("text", ["0", "4", "1-9", "x", "2-"])
def test_parse_days_rejects_outside_log(text):
    with pytest.raises(click.BadParameter):
        parse_days(text, 3)


def test_replay_learned_needs_model(bank_log):
    result = CliRunner().invoke(
        cli, ["replay", str(bank_log), "--predictor", "learned", "--days", "1"]
    )
    assert result.exit_code != 0
    assert "--model" in result.output


def test_replay_rejects_bad_probability(bank_log):
    result = CliRunner().invoke(
        cli, ["replay", str(bank_log), "--accept-probability", "2", "--days", "1"]
    )
    assert result.exit_code != 0
    assert "'--accept-probability'" in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [("--window-s", "nan"), ("--threshold-s", "inf"), ("--reoffer-s", "nan")],
)
def test_replay_rejects_non_finite_seconds(bank_log, option, value):
    result = CliRunner().invoke(
        cli, ["replay", str(bank_log), option, value, "--days", "1"]
    )
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': {float(value)!r}" in result.output


def test_parse_days_checks_bounds_before_expanding():
    # A range of a billion days would fill memory if it were expanded first.
    with pytest.raises(click.BadParameter, match="day 999999999 is outside"):
        parse_days("1-999999999", 21)


def test_parse_days_names_a_reversed_range():
    with pytest.raises(click.BadParameter, match="5-3 is reversed.*3-5"):
        parse_days("5-3", 21)


def test_replay_reports_a_bad_log_in_one_line(tmp_path):
    log = tmp_path / "calls.tsv"
    log.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    result = CliRunner().invoke(cli, ["replay", str(log), "--days", "1"])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "not a tab-separated text log" in result.output


def test_replay_reports_an_unusable_store_in_one_line(bank_log, tmp_path):
    # A folder where the day's SQLite store should be: SQLite cannot open it.
    (tmp_path / "callbacks-1999-02-06.db").mkdir()
    result = CliRunner().invoke(
        cli, ["replay", str(bank_log), "--days", SATURDAY, "--store-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "cannot open the store" in result.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--json", "/proc/nope/r.json", "folder /proc/nope does not exist"),
        ("--plot-dir", "/proc/nope", "failed to create folder /proc/nope"),
    ],
)
def test_replay_checks_output_paths_first(bank_log, option, value, message):
    # The store folder cannot be created either, which fails the replay with
    # exit status 1. Status 2 shows that the output path was checked first.
    result = CliRunner().invoke(
        cli,
        [
            "replay",
            str(bank_log),
            "--days",
            "8",
            "--store-dir",
            "/proc/nope-store",
            option,
            value,
        ],
    )
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{option}'" in result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_replay_json_under_file_rejected(bank_log, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = CliRunner().invoke(
        cli, ["replay", str(bank_log), "--json", str(blocker / "r.json")]
    )
    assert result.exit_code == 2
    assert f"folder {blocker} does not exist" in result.output


def test_replay_bad_day_names_option(bank_log):
    result = CliRunner().invoke(cli, ["replay", str(bank_log), "--days", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--days': day 0 is outside the log" in result.output


def test_parse_days_names_given_option():
    with pytest.raises(click.BadParameter) as caught:
        parse_days("30", 21, "--plot-day")
    assert "'--plot-day'" in caught.value.format_message()


def test_replay_plot_day_outside_days_fails_first(bank_log, tmp_path):
    # The unusable store folder would fail the replay with status 1.
    result = CliRunner().invoke(
        cli,
        [
            "replay",
            str(bank_log),
            "--days",
            "8",
            "--plot-dir",
            str(tmp_path / "plots"),
            "--plot-day",
            "9",
            "--store-dir",
            "/proc/nope-store",
        ],
    )
    assert result.exit_code == 2
    assert "--plot-day 9 is not replayed: add it to --days" in result.output
