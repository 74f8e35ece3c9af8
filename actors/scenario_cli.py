"""The ``callsure scenario`` commands: edit and check IVR scenarios.

``edit`` serves a local web editor for one scenario file, described in
`callsure.actors.scenario_editor`. ``check`` validates files with the
gateway's own checker, for the CI pipelines of integrators.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import click

from callsure.actors.sip.prompts import PromptLibrary
from callsure.actors.sip.scenario import ScenarioError, load_scenario
from callsure.engine.exceptions import ConfigError

logger = logging.getLogger(__name__)

_PROMPTS_OPTION = click.option(
    "--prompts",
    "prompts_dir",
    type=click.Path(file_okay=False),
    help="Folder of <name>.wav prompts that prompt names are checked against; "
    "the shipped prompt library by default.",
)


def _prompt_library(prompts_dir: str | None) -> PromptLibrary:
    try:
        return PromptLibrary(prompts_dir)
    except ConfigError as error:
        raise click.BadParameter(
            f"{prompts_dir} is not a folder: give the folder of the prompt WAV files",
            param_hint="'--prompts'",
        ) from error


@click.group("scenario")
def scenario():
    """Edit and check IVR scenarios (YAML or JSON files)."""


@scenario.command("edit")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="TCP port on 127.0.0.1; 0 picks a free port.",
)
@_PROMPTS_OPTION
def edit(file, port, prompts_dir):
    """Serve a web editor for scenario FILE on 127.0.0.1 until Ctrl-C or SIGTERM.

    Creates a minimal valid scenario when FILE does not exist. Open the
    printed URL: it carries a random token that every request must send.
    """
    from callsure.actors.scenario_editor import EditorServer

    prompts = _prompt_library(prompts_dir)
    try:
        server = EditorServer(file, prompts, port=port)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    except OSError as error:
        raise click.UsageError(
            f"failed to listen on 127.0.0.1:{port} ({error.strerror}): "
            "pick another --port, or 0 for a free one"
        ) from None

    logger.info("scenario editor for %s listening on 127.0.0.1:%d", file, server.port)
    click.echo(f"Editing {file}. Open this URL in a browser (Ctrl-C stops):")
    click.echo(server.url, color=False)
    # A shell starts background jobs with SIGINT ignored, so SIGTERM is the
    # way to stop those; both end the loop below the same way.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    logger.info("scenario editor for %s stopped", file)
    click.echo("Stopped.")


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


@scenario.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_PROMPTS_OPTION
def check(files, prompts_dir):
    """Validate scenario FILES as the SIP gateway loads them.

    Prints one line per file, and exits with status 1 when any file is
    invalid.
    """
    prompts = _prompt_library(prompts_dir)
    failed = 0
    for file in files:
        try:
            loaded = load_scenario(Path(file), prompts)
        except ScenarioError as error:
            failed += 1
            click.echo(f"{file}: invalid: {error.path}: {error.fix}")
            continue
        click.echo(f"{file}: OK ({len(loaded.nodes)} nodes, start {loaded.start})")
    if failed:
        raise SystemExit(1)
