"""The ``eyriectl`` entry point: the root command, its global options, and the command list."""

from __future__ import annotations

from pathlib import Path

import click

from supervisor import __version__
from supervisor.cli._app import Cli, EyriectlGroup
from supervisor.cli._lazy import LazyCommands
from supervisor.logconfig import configure_logging
from supervisor.paths import Home

__all__ = ["cli", "main"]

_HELP = """Control eyried, the supervisor of a fleet of AI-agent gateways.

The fleet is declared in $EYRIE_HOME/fleet.yaml (default ~/.eyrie); eyriectl talks to eyried over
$EYRIE_HOME/run/eyried.sock. Commands that only edit fleet.yaml (init, add, remove, enable, disable) also
work while eyried is down; the change then applies at its next start. Removed instances wait in the trash
($EYRIE_HOME/removed/, see `eyriectl trash`) until restored or emptied.

\b
Examples:
  eyriectl init --profile general
  eyriectl ps
  eyriectl add scout-sam --framework embedded
  eyriectl restart --all --wait
  eyriectl logs scout-sam -f
  eyriectl install
  eyriectl daemon restart

\b
Exit codes:
  0  success
  1  failure (the message says what failed)
  2  usage error (unknown command or option, bad argument)
  3  eyried is not running
"""


@click.group(cls=EyriectlGroup, help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, readable=False, path_type=Path),
    help="The supervisor's home (default: $EYRIE_HOME, else ~/.eyrie).",
)
@click.version_option(__version__, prog_name="eyriectl")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    ctx.obj = Cli(Home.resolve(home))


cli.commands = LazyCommands(
    {
        "init": "supervisor.cli._fleet:init",
        "add": "supervisor.cli._fleet:add",
        "remove": "supervisor.cli._fleet:remove",
        "enable": "supervisor.cli._fleet:enable",
        "disable": "supervisor.cli._fleet:disable",
        "ps": "supervisor.cli._inspect:ps",
        "projects": "supervisor.cli._projects:projects",
        "list": "supervisor.cli._inspect:list_",
        "status": "supervisor.cli._inspect:status",
        "reload": "supervisor.cli._inspect:reload",
        "trash": "supervisor.cli._trash:trash",
        "events": "supervisor.cli._inspect:events",
        "top": "supervisor.cli._top:top",
        "start": "supervisor.cli._lifecycle:start",
        "stop": "supervisor.cli._lifecycle:stop",
        "restart": "supervisor.cli._lifecycle:restart",
        "logs": "supervisor.cli._logs:logs",
        "migrate": "supervisor.cli._migrate:migrate",
        "secret": "supervisor.cli._secret:secret",
        "daemon": "supervisor.cli._daemon:daemon",
        "install": "supervisor.cli._systemd:install",
        "uninstall": "supervisor.cli._systemd:uninstall",
        "doctor": "supervisor.cli._systemd:doctor",
    }
)


def main() -> None:
    configure_logging(level="warning")  # the library's info lines are the daemon's business; stdout is data
    cli(prog_name="eyriectl")
