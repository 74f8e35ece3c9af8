"""The ``callsure`` command.

Subcommands live in their own modules and are imported only when used, so
``callsure --help`` stays fast and a subcommand's heavy imports (Ray,
pjsua2) cost nothing to the others. Logging is configured here and nowhere
else.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

import click

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
}


def _package_version() -> str:
    try:
        return version("callsure")
    except PackageNotFoundError:
        return "unknown (not installed)"


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
