"""The ``callsure`` command.

Subcommands live in their own modules and are imported only when used, so
``callsure --help`` stays fast and a subcommand's heavy imports (Ray,
pjsua2) cost nothing to the others. Logging is configured here and nowhere
else.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from click.core import ParameterSource

from callsure.actors.logsetup import configure_logging
from callsure.engine.config import load_config, render_defaults
from callsure.engine.exceptions import ConfigError
from callsure.engine.settings import LOG_LEVELS

# name -> "module:attribute" of a click command or group.
SUBCOMMANDS: dict[str, str] = {
    "serve": "callsure.actors.serve_cli:serve",
    "client": "callsure.actors.client_cli:client",
    "model": "callsure.actors.model_cli:model",
    "amd": "callsure.actors.amd_cli:amd",
    "demo": "callsure.actors.demo_cli:demo",
    "replay": "callsure.actors.replay_cli:replay",
    "scenario": "callsure.actors.scenario_cli:scenario",
}


def _package_version() -> str:
    try:
        return version("callsure")
    except PackageNotFoundError:
        return "unknown (not installed)"


def check_output_file(path: str | os.PathLike, option: str) -> None:
    """Raise ``click.BadParameter`` unless ``path`` can be written.

    Commands call this at start, so that a long run is not lost to a
    missing or read-only folder when the result is written at the end.
    """
    path = Path(path)
    if path.is_dir():
        raise click.BadParameter(
            f"{path} is a folder: give a file name inside it", param_hint=f"'{option}'"
        )
    _check_writable_folder(path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise click.BadParameter(
            f"{path} is not writable: change its permissions or pick another file",
            param_hint=f"'{option}'",
        )


def check_output_folder(folder: str | os.PathLike, option: str) -> None:
    """Create ``folder`` if it is missing.

    Raise ``click.BadParameter`` unless files can be written in it.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise click.BadParameter(
            f"failed to create folder {folder} ({error.strerror}): "
            "pick a folder under a writable one",
            param_hint=f"'{option}'",
        ) from None
    _check_writable_folder(folder, option)


def _check_writable_folder(folder: Path, option: str) -> None:
    if not folder.is_dir():
        raise click.BadParameter(
            f"folder {folder} does not exist: create it or pick another path",
            param_hint=f"'{option}'",
        )
    # access(2) grants root write access even where the file system rejects
    # the write, so a file is created and removed to find out.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise click.BadParameter(
            f"cannot write in folder {folder} ({error.strerror}): "
            "pick a writable folder",
            param_hint=f"'{option}'",
        ) from None


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *SUBCOMMANDS])

    def get_command(self, ctx, name):
        if name in SUBCOMMANDS:
            module_name, _, attribute = SUBCOMMANDS[name].partition(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_package_version(), prog_name="callsure")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="CALLSURE_CONFIG",
    help="TOML configuration file; see `callsure config defaults`.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Lowest level logged; overrides log.level.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="text, or one JSON object per line; overrides log.format.",
)
@click.pass_context
def cli(ctx, config_path, log_level, log_format):
    """callsure: predictive callbacks for contact centers."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        source = ctx.get_parameter_source("config_path")
        if exc.key == "--config" and source is ParameterSource.ENVIRONMENT:
            # The user set the environment variable, not the option.
            exc = ConfigError(
                "CALLSURE_CONFIG",
                exc.value,
                f"{exc.expected} (set CALLSURE_CONFIG to another path, or unset "
                "it to use the defaults and the environment)",
            )
        raise click.UsageError(str(exc)) from None
    overrides = {}
    if log_level:
        overrides["level"] = log_level.upper()
    if log_format:
        overrides["format"] = log_format
    if overrides:
        config = config.replace(log=overrides)
    configure_logging(config.log.level, config.log.format)
    ctx.obj = config


@cli.group("config")
def config_group():
    """Show and check configuration."""


@config_group.command("check")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML configuration file; replaces the one given before `config`.",
)
@click.pass_obj
def config_check(config, config_path):
    """Check the configuration as `callsure serve` does, without starting it.

    Checks every value, the listen, Ray and SIP addresses, the TLS files,
    the SIP codecs and IVR scenario when the gateway is enabled, and the
    store's folder and file. Prints one line and exits with status
    0, or prints the first problem and exits with status 2.
    """
    from callsure.actors.serve_cli import check_config, check_storage_path
    from callsure.engine.exceptions import CallsureError

    try:
        if config_path:
            config = load_config(config_path)
        # A running server holds the gRPC port and the store's lock, which
        # is no problem of the configuration, and a check creates no folder.
        check_config(config, probe_bind=False)
        check_storage_path(config.storage.path, check_lock=False, create_folder=False)
    except CallsureError as exc:
        raise click.UsageError(str(exc)) from None
    total = sum(len(section) for section in config.as_dict().values())
    source = config.source or "the defaults and the environment"
    click.echo(f"configuration OK: {total} settings from {source}")


@config_group.command("defaults")
def config_defaults():
    """Print every key with its default, as a commented TOML file."""
    click.echo(render_defaults(), nl=False)


@config_group.command("show")
@click.pass_obj
def config_show(config):
    """Print the effective configuration (secrets hidden) as JSON."""
    import json

    click.echo(json.dumps(config.as_dict(reveal_secrets=False), indent=2))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    try:
        cli.main(args=argv, prog_name="callsure", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
