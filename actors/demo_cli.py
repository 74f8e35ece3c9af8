"""``callsure demo``: a surge of the real call log handled over SIP.

Starts callsure (Ray, the actors, the gRPC API) in this process on
127.0.0.1, the SIP gateway, and pjsua2 phones for customers, callers and
agents. It replays an hour of the Anonymous Bank log in five minutes,
shows a live view, and prints a report at the end (``--json`` writes it
too).
Every process it started is stopped on exit, on Ctrl-C and on SIGTERM.

NOTE: after SIGKILL of the demo, Ray's dashboard and runtime-env agents
keep running under PID 1, and the /tmp/callsure-demo-* and
/tmp/callsure-ray-* folders stay. Nothing is left to stop them, but a new
run is not affected, because it starts its own Ray and folders.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import click

from callsure.actors.demo.workload import (
    DEFAULT_LOG,
    DEFAULT_RECORDINGS,
    DEFAULT_START,
    QUICK_START,
)
from callsure.engine.exceptions import CallsureError, ValidationError

logger = logging.getLogger(__name__)

# --quick replays a quarter hour of the log at 15x (60 s of traffic) and
# waits at most 50 s for the last callbacks, so that with start-up it ends
# within three minutes.
QUICK_MINUTES = 15.0
QUICK_SPEED = 15.0
QUICK_DRAIN_S = 50.0
# Ray's own default parent folder, short enough for its socket paths.
RAY_PARENT = "/tmp"


class FiniteFloatRange(click.FloatRange):
    """A ``click.FloatRange`` that also rejects nan, which passes its bounds
    because every comparison with nan is false, and inf."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


RAY_FOLDER_RETRY_S = 2.0


@click.command("demo")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=DEFAULT_LOG,
    show_default="the shipped Anonymous Bank log, 1-21 February 1999",
    help="Call log in the Anonymous Bank format (.tsv or .tsv.gz).",
)
@click.option(
    "--recordings",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DEFAULT_RECORDINGS,
    show_default="the shipped recordings",
    help="Folder of WAV files with labels.csv that customer phones play.",
)
@click.option(
    "--start",
    show_default=f"{DEFAULT_START}, or {QUICK_START} with --quick",
    help="Local time (Israel) in the log where the replay starts.",
)
@click.option(
    "--minutes",
    type=FiniteFloatRange(min=1, max=24 * 60),
    default=60.0,
    show_default=True,
    help="Minutes of the log to replay.",
)
@click.option(
    "--speed",
    type=FiniteFloatRange(min=1, max=60),
    default=12.0,
    show_default=True,
    help="Time compression: log seconds per real second.",
)
@click.option(
    "--drain",
    "drain_s",
    type=FiniteFloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds to wait after the last caller for open callbacks.",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"Replay {QUICK_MINUTES:g} minutes at {QUICK_SPEED:g}x with "
    f"{QUICK_DRAIN_S:g} s to drain (under three minutes in all).",
)
@click.option(
    "--seed",
    type=int,
    default=1999,
    show_default=True,
    help="Seed of the customers' answers and IVR choices.",
)
@click.option(
    "--retail-agents",
    type=click.IntRange(1, 50),
    default=4,
    show_default=True,
    help="Agents of the retail group.",
)
@click.option(
    "--premium-agents",
    type=click.IntRange(1, 50),
    # Two agents carry the premium group's usual traffic alone, and the
    # engine then plans no capacity for its callbacks.
    default=3,
    show_default=True,
    help="Agents of the premium group, the VIP agent included.",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    help="SQLite store to use; default a file in a temporary folder.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the report to this file as JSON.",
)
@click.option("--no-view", is_flag=True, help="Print no live view, only the report.")
@click.pass_obj
def demo(
    config,
    log_path,
    recordings,
    start,
    minutes,
    speed,
    drain_s,
    quick,
    seed,
    retail_agents,
    premium_agents,
    db_path,
    json_path,
    no_view,
):
    """Replay a surge of the real call log through callsure over SIP."""
    from callsure.actors.cli import check_output_file
    from callsure.actors.demo.runner import DemoOptions, run_demo
    from callsure.actors.demo.view import LiveView

    if json_path is not None:
        check_output_file(json_path, "--json")
    # gRPC's C core prints a line at every fork while channels are open
    # (Ray and pjsua2 processes are forked), which would break the screen.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if quick:
        minutes, speed, drain_s = QUICK_MINUTES, QUICK_SPEED, QUICK_DRAIN_S
        start = start or QUICK_START
    start = start or DEFAULT_START
    options = DemoOptions(
        log_path=log_path,
        recordings=recordings,
        start=start,
        minutes=minutes,
        speed=speed,
        seed=seed,
        drain_s=drain_s,
        retail_agents=retail_agents,
        premium_agents=premium_agents,
        db_path=db_path,
    )
    view = LiveView(enabled=not no_view)
    if view.terminal and view.enabled:
        # The screen is redrawn every second; per-call INFO lines would
        # scroll it away, so only warnings are shown while it runs.
        logging.getLogger("callsure").setLevel(logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="callsure-demo-"))
    # Ray's Unix socket paths must stay under 107 bytes, whatever TMPDIR is.
    ray_folder = Path(tempfile.mkdtemp(prefix="callsure-ray-", dir=RAY_PARENT))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    previous_interrupt = signal.signal(signal.SIGINT, _interrupt)
    try:
        report = run_demo(config, options, folder, ray_folder, view)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    except CallsureError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("demo interrupted; every process it started was stopped", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_interrupt)
        shutil.rmtree(folder, ignore_errors=True)
        _remove_ray_folder(ray_folder)
    click.echo(format_report(report))
    if json_path is not None:
        # The folder was checked at start, but it may have gone since.
        try:
            json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        except OSError as error:
            raise click.ClickException(
                f"failed to write the report to {json_path} ({error.strerror}). "
                "The report above is complete"
            ) from None
        click.echo(f"report written to {json_path}")


def _remove_ray_folder(folder: Path) -> None:
    # Ray's exiting processes may still write session logs for a moment
    # after ray.shutdown returns, so a second pass removes what they left.
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():
        time.sleep(RAY_FOLDER_RETRY_S)
        shutil.rmtree(folder, ignore_errors=True)


def _interrupt(signum, frame):
    # A second SIGTERM or Ctrl-C must not cut short the orderly stop that
    # this one starts. The finally block of ``demo`` puts the handlers back.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger.warning(
        "demo: received %s, stopping every process it started",
        signal.Signals(signum).name,
    )
    raise KeyboardInterrupt


# The shipped IVR's menu keys, as the report names them.
IVR_CHOICES = {
    "1": "1 (call when an agent is free)",
    "2": "2 (at a keyed time)",
    "3": "3 (at the predicted time)",
    "none": "no key (hung up or timed out)",
}


def format_report(report: dict) -> str:
    """Format the report as text for the terminal."""
    promises = report["promises"]
    attempts = report["attempts"]
    amd = report["amd"]
    live = report["live"]
    repeat = report["repeat_callers"]
    command = report["command"]
    lines = [
        "",
        f"callsure demo report: {command['minutes']:g} minutes of the log from "
        f"{command['start']} at {command['speed']:g}x ({report['elapsed_s']} s)",
        f"  callers {report['callers']}, agents {report['agents']}",
        f"  IVR calls {report['ivr']['calls']}, choices "
        + ", ".join(
            f"{IVR_CHOICES.get(key, key)} {count}"
            for key, count in sorted(report["ivr"]["choices"].items())
        ),
        f"  promises made {promises['made']} {promises['by_mode']}: kept "
        f"{promises['kept']}, late {promises['late']} (keep window "
        f"{promises['keep_window_s']:g} s), open at end {promises['open_at_end']} "
        f"({promises['open_at_end_not_due']} promised for a later time), "
        f"states {promises['states']}",
        f"  callback attempts {attempts['dialed']}, retries {attempts['retries']}, "
        f"outcomes {attempts['outcomes']}",
        f"  VIP attempts {attempts['vip_dialed']}, to the dedicated agent "
        f"{attempts['vip_to_dedicated_agent']}",
        f"  AMD verdicts matching the recordings' labels: {amd['matched']} of "
        f"{amd['judged']}; by label {amd['by_truth']}"
        + (
            " (NONE: the call ended before a verdict)"
            if any("NONE" in verdicts for verdicts in amd["by_truth"].values())
            else ""
        ),
        f"  SMS requests {report['sms_requests']}",
        f"  live callers: answered {live['answered']}, abandoned {live['abandoned']}, "
        f"left with a promise {live['left_with_promise']}, still waiting at the end "
        f"{live['waiting_at_end']}, service level {live['service_level']} within "
        f"{live['service_level_time_s']:g} s, abandonment {live['abandonment']}",
        f"  repeat callers {repeat['arrived']}: answered {repeat['answered']}, "
        f"promised a callback {repeat['promised']}, abandoned {repeat['abandoned']}",
    ]
    return "\n".join(lines)
