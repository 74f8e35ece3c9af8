"""``callsure replay``: days of the real call log, baseline against callbacks.

Each day runs twice in virtual time through the engine's domain code
(``callsure.engine.simulation``): as the log's center without callbacks,
and with callbacks offered, stored and kept by the real scheduler on a
SQLite store. The command prints a table per day and in total, and
optionally writes JSON and PNG plots of one day.
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import click

from callsure.engine.calllog import read_call_log
from callsure.engine.exceptions import CallsureError, ValidationError

logger = logging.getLogger(__name__)

DEMO_LOG = "calls-1999-02-01-to-21.tsv.gz"


def demo_log_path() -> Path:
    """Return the call log shipped with the demo (gzip'd)."""
    return Path(str(resources.files("callsure.actors") / "data" / "demo" / DEMO_LOG))


def read_log(path: Path):
    """Read a call log, decompressing a ``.gz`` file to a temporary copy.

    ``read_call_log`` reads plain text only, so a gzip'd log is first
    written out uncompressed.
    """
    if path.suffix != ".gz":
        return read_call_log(path)
    with tempfile.TemporaryDirectory(prefix="callsure-log-") as folder:
        plain = Path(folder) / path.stem
        try:
            with gzip.open(path, "rb") as source, plain.open("wb") as target:
                shutil.copyfileobj(source, target)
        except (OSError, EOFError) as error:
            raise click.UsageError(
                f"{path} is not a readable gzip file ({error}); pass the log "
                "as .tsv or a valid .tsv.gz"
            ) from None
        return read_call_log(plain)


def parse_days(text: str, count: int, option: str = "--days") -> list[int]:
    """Parse ``all``, ``FIRST-LAST`` or ``3,5,9`` into day numbers from 1.

    Errors raise ``click.BadParameter`` naming ``option``.
    """
    hint = f"'{option}'"
    text = text.strip().lower()
    if text == "all":
        return list(range(1, count + 1))
    numbers: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.partition("-")
        try:
            low, high = int(first), int(last if sep else first)
        except ValueError:
            raise click.BadParameter(
                f"{text!r} is not a day list: use all, FIRST-LAST (1-7) or 3,5,9",
                param_hint=hint,
            ) from None
        if low > high:
            raise click.BadParameter(
                f"day range {part.strip()} is reversed: write it as {high}-{low}",
                param_hint=hint,
            )
        # The bounds are checked before the range is expanded, so a huge
        # range fails at once instead of filling memory.
        for number in (low, high):
            if not 1 <= number <= count:
                raise click.BadParameter(
                    f"day {number} is outside the log: use 1 to {count}",
                    param_hint=hint,
                )
        numbers.update(range(low, high + 1))
    return sorted(numbers)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:5.1f}"


def _seconds(value) -> str:
    return "-" if value is None else f"{value:6.0f}"


def format_table(report: dict) -> str:
    """Render the per-day and total figures as a fixed-width table."""
    header = (
        f"{'day':<14} {'offered':>7} {'SL% base':>8} {'SL% cb':>7} "
        f"{'aband% b':>8} {'aband% cb':>9} {'redials':>9} {'cb acc':>6} "
        f"{'ontime%':>7} {'kept%':>6} {'req->svc':>8} {'redial->svc':>11} "
        f"{'occ% b/cb':>10}"
    )
    lines = [header, "-" * len(header)]
    rows = [(d["day"] + " " + d["weekday"][:3], d) for d in report["days"]]
    rows.append(("total", report["total"]))
    for label, row in rows:
        base, with_callbacks = row["baseline"], row["callbacks"]
        promises = with_callbacks["callbacks"]
        occupancy = (
            f"{_percent(base['occupancy']).strip()}/"
            f"{_percent(with_callbacks['occupancy']).strip()}"
        )
        lines.append(
            f"{label:<14} {base['calls']['offered']:>7} "
            f"{_percent(base['calls']['service_level_live']):>8} "
            f"{_percent(with_callbacks['calls']['service_level_live']):>7} "
            f"{_percent(base['calls']['abandonment']):>8} "
            f"{_percent(with_callbacks['calls']['abandonment']):>9} "
            f"{base['calls']['redials']:>4}>{with_callbacks['calls']['redials']:<4} "
            f"{promises['accepted']:>6} "
            f"{_percent(promises['dialed_on_time_share']):>7} "
            f"{_percent(promises['kept_share_of_answered']):>6} "
            f"{_seconds(promises['request_to_service']['mean_s']):>8} "
            f"{_seconds(base['redial_to_service']['mean_s']):>11} "
            f"{occupancy:>10}"
        )
    lines.append("")
    for name, check in report["total"]["targets"].items():
        value = check["value"]
        text = "-" if value is None else f"{value:.3f}"
        verdict = "met" if check["met"] else "NOT met"
        lines.append(f"{name}: {text} (target {check['target']:.3f}) {verdict}")
    return "\n".join(lines)


def plot_replayed_day(day_replay, folder: Path) -> list[Path]:
    """Draw one replayed day: arrivals, queue, promises, agents; return the
    PNG files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import numpy as np

    from callsure.engine.simulation.events import utc
    from callsure.engine.simulation.replay import LOG_ZONE

    folder.mkdir(parents=True, exist_ok=True)
    base = day_replay.baseline.trace
    with_callbacks = day_replay.callbacks.trace

    def hours(trace):
        return [utc(t).astimezone(_zone(LOG_ZONE)) for t in trace.time]

    def per_quarter(trace):
        # Arrivals per 15 minutes, from the per-minute trace.
        counts = np.asarray(trace.arrivals, dtype=float)
        window = 15
        return np.convolve(counts, np.ones(window), mode="same")

    panels = [
        (
            "calls per 15 min",
            [
                (hours(base), per_quarter(base), "baseline"),
                (hours(with_callbacks), per_quarter(with_callbacks), "callbacks"),
            ],
        ),
        (
            "callers waiting",
            [
                (hours(base), base.queue, "baseline"),
                (hours(with_callbacks), with_callbacks.queue, "callbacks"),
            ],
        ),
        (
            "callback promises",
            [
                (hours(with_callbacks), with_callbacks.promises_pending, "pending"),
                (hours(with_callbacks), with_callbacks.promises_due, "due/dialing"),
            ],
        ),
        (
            "agents",
            [
                (hours(base), base.agents_on_duty, "on duty"),
                (hours(base), base.agents_busy, "busy, baseline"),
                (hours(with_callbacks), with_callbacks.agents_busy, "busy, callbacks"),
            ],
        ),
    ]
    written = []
    stamp = day_replay.day.isoformat()
    figure, axes = plt.subplots(len(panels), 1, figsize=(11, 11), sharex=True)
    for axis, (label, series) in zip(axes, panels, strict=True):
        for times, values, legend in series:
            axis.step(times, values, where="post", label=legend, linewidth=1)
        axis.set_ylabel(label)
        axis.legend(loc="upper right", fontsize="small")
        axis.grid(alpha=0.3)
    axes[-1].xaxis.set_major_formatter(
        mdates.DateFormatter("%H:%M", tz=_zone(LOG_ZONE))
    )
    axes[0].set_title(f"Replay of {stamp} ({day_replay.day:%A}), local time")
    figure.tight_layout()
    path = folder / f"replay-{stamp}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)
    return written


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@click.command("replay")
@click.argument(
    "log_path",
    metavar="[LOG.tsv]",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--days",
    default="all",
    show_default=True,
    help="Days to replay, counted from 1: all, FIRST-LAST or a list such as 3,5,9.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Write JSON here."
)
@click.option(
    "--plot-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write PNG plots of one replayed day into this folder.",
)
@click.option(
    "--plot-day",
    type=int,
    help="Day number to plot; default: the replayed day with most calls.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of every draw.")
@click.option(
    "--agent-first/--customer-first",
    default=False,
    show_default=True,
    help="Reserve a free agent before each callback dial, or dial first and "
    "queue the answered customer for the next free agent.",
)
@click.option(
    "--threshold-s",
    default=60.0,
    show_default=True,
    help="Offer a callback above this predicted wait, in seconds.",
)
@click.option(
    "--accept-probability",
    default=0.6,
    show_default=True,
    help="Probability that a caller accepts one offer.",
)
@click.option(
    "--reoffer-s",
    default=60.0,
    show_default=True,
    help="Offer again after this many seconds of waiting (0: offer once).",
)
@click.option("--max-offers", default=3, show_default=True, help="Offers per call.")
@click.option(
    "--abandon-callbacks/--no-abandon-callbacks",
    default=True,
    show_default=True,
    help="Promise a callback to identified callers who abandon.",
)
@click.option(
    "--answer-probability",
    default=0.85,
    show_default=True,
    help="Probability that the customer answers a callback dial.",
)
@click.option(
    "--redial-while-pending",
    default=0.05,
    show_default=True,
    help="Probability that a customer with a pending callback redials anyway.",
)
@click.option(
    "--window-s",
    default=300.0,
    show_default=True,
    help="Announced window after the promised time, in seconds.",
)
@click.option(
    "--promise-quantile",
    default=0.75,
    show_default=True,
    help="Quantile of the predicted wait used as the promised time.",
)
@click.option(
    "--service-level-target",
    default=0.5,
    show_default=True,
    help="Inbound share within 20 s that callback capacity must leave intact.",
)
@click.option(
    "--warmup-days",
    default=7,
    show_default=True,
    help="Days before each replayed day fed to the predictor first.",
)
@click.option(
    "--predictor",
    type=click.Choice(["erlang-a", "learned"]),
    default="erlang-a",
    show_default=True,
    help="Erlang A over the online forecast, or the learned model (--model).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Model file of `callsure model fit`, for --predictor learned.",
)
@click.option(
    "--store-dir",
    type=click.Path(file_okay=False),
    help="Folder of the SQLite stores; default: a temporary folder in /dev/shm.",
)
def replay(**arguments):
    """Replay days of LOG.tsv (default: the demo's log) with and without
    callbacks, and print what changed."""
    # The engine logs each callback's changes at INFO, thousands of lines a
    # day in a replay, so they show only with --log-level DEBUG.
    engine_logger = logging.getLogger("callsure.engine")
    level = engine_logger.level
    if not engine_logger.isEnabledFor(logging.DEBUG):
        engine_logger.setLevel(logging.WARNING)
    # Errors of the engine reach the user as one line, not a traceback.
    try:
        _replay(**arguments)
    except ValidationError as error:
        raise click.UsageError(str(error)) from None
    except CallsureError as error:
        raise click.ClickException(str(error)) from None
    finally:
        engine_logger.setLevel(level)


def _replay(
    log_path,
    days,
    json_path,
    plot_dir,
    plot_day,
    predictor,
    model_path,
    store_dir,
    **option_values,
):
    from callsure.actors.cli import check_output_file, check_output_folder
    from callsure.engine.simulation import ReplayOptions, log_days, replay_days

    if json_path:
        check_output_file(json_path, "--json")
    if plot_dir:
        check_output_folder(plot_dir, "--plot-dir")
    if predictor == "learned" and model_path is None:
        raise click.UsageError(
            "--predictor learned needs --model FILE (fit one with `callsure model fit`)"
        )
    try:
        options = ReplayOptions(**option_values)
    except ValidationError as error:
        if error.field not in option_values:
            raise click.UsageError(str(error)) from None
        # An option of this command: name it as the user typed it.
        raise click.BadParameter(
            f"{error.value!r}: {error.fix}",
            param_hint=f"'--{error.field.replace('_', '-')}'",
        ) from None
    log = read_log(log_path or demo_log_path())
    dates = log_days(log)
    if not dates:
        raise click.UsageError(f"{log.path} contains no usable calls")
    chosen = [dates[n - 1] for n in parse_days(days, len(dates))]
    plot_date = None
    if plot_dir and plot_day is not None:
        # Checked before the replay, which may run for minutes.
        plot_date = dates[parse_days(str(plot_day), len(dates), "--plot-day")[0] - 1]
        if plot_date not in chosen:
            raise click.UsageError(
                f"--plot-day {plot_day} is not replayed: add it to --days"
            )
    try:
        replays, report = replay_days(
            log,
            chosen,
            options,
            store_dir=store_dir,
            predictor=predictor,
            model_path=model_path,
        )
    except ValidationError as error:
        raise click.UsageError(str(error)) from None
    report["options"] = options.as_dict()
    report["predictor"] = predictor
    click.echo(format_table(report))
    if json_path:
        # The folder was checked at start, but it may have gone since.
        try:
            Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
        except OSError as error:
            raise click.ClickException(
                f"failed to write {json_path} ({error.strerror}). The table "
                "above is complete"
            ) from None
        click.echo(f"wrote {json_path}")
    if plot_dir:
        if plot_date is not None:
            chosen_replay = next(r for r in replays if r.day == plot_date)
        else:
            chosen_replay = max(replays, key=lambda r: len(r.baseline.results))
        for path in plot_replayed_day(chosen_replay, plot_dir):
            click.echo(f"wrote {path}")
