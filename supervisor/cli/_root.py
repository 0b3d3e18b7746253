"""The ``eyriectl`` click group: the root command, its global options, and the command list.

It imports only click and what every command shares: each command loads what it needs when it runs.
`supervisor.cli.main` loads it for every command line the quick path (`supervisor.cli._front`) leaves.
"""

from __future__ import annotations

from pathlib import Path

import click

from supervisor.cli._app import Cli, EyriectlGroup
from supervisor.cli._lazy import LazyCommands
from supervisor.paths import Home

__all__ = ["SHORT_HELP", "cli"]

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
  4  degraded: `status` found an instance not running as desired, or the last reload rejected

\b
Shell completion (commands, options and instance names):
  bash: eval "$(_EYRIECTL_COMPLETE=bash_source eyriectl)"   (in ~/.bashrc)
  zsh:  eval "$(_EYRIECTL_COMPLETE=zsh_source eyriectl)"    (in ~/.zshrc)
  fish: _EYRIECTL_COMPLETE=fish_source eyriectl | source    (in ~/.config/fish/completions/eyriectl.fish)
"""


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from supervisor import __version__  # reads the package metadata: only --version pays for it

    click.echo(f"eyriectl, version {__version__}")
    ctx.exit()


SHORT_HELP = {
    "add": "Declare a new instance in fleet.yaml, provision it and start it, waiting until it runs.",
    "daemon": "Act on eyried itself.",
    "disable": "Disable instances: do not start them after a reboot.",
    "doctor": "Check that the fleet survives crashes and reboots, and say how to fix what does not.",
    "enable": "Enable instances: start them after a reboot.",
    "events": "Show recent lifecycle events; -f follows new ones.",
    "init": "Write a commented fleet.yaml from a profile.",
    "install": "Install eyried as a systemd user service for this home and start it.",
    "list": "List instances: status, health, pid, port, uptime, restarts, CPU, memory, flags.",
    "logs": "Print an instance's log, or with no NAME every instance's, merged.",
    "migrate": "Migrate provisioned instances to this release's layout.",
    "projects": "List, set or remove the projects of fleet.yaml.",
    "ps": "List instances: status, health, pid, port, uptime, restarts, CPU, memory, flags.",
    "reload": "Re-read fleet.yaml and apply the difference (like SIGHUP).",
    "remove": "Stop an instance, remove it from fleet.yaml and move its directory to the trash.",
    "restart": "Stop instances and start them again.",
    "secret": "Set, list or remove provider secrets (API keys).",
    "start": "Start instances now; they run until stopped or the next boot.",
    "status": "Show the daemon (exit 4 when degraded), or one instance: status NAME.",
    "stop": "Stop instances now; they stay stopped until started or the next boot.",
    "top": "Show every instance's status, CPU, memory, restarts and uptime, refreshed in place.",
    "trash": "List, restore or empty removed instances.",
    "uninstall": "Stop and disable this home's eyried user service and remove exactly what install made.",
}
"""Each command's one line in ``eyriectl --help``, so that the root's help imports no command (a test holds
it equal to each command's own short help; a command missing here is imported for it)."""


@click.group(cls=EyriectlGroup, help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, readable=False, path_type=Path),
    help="The supervisor's home (default: $EYRIE_HOME, else ~/.eyrie).",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
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


cli.short_help_of = SHORT_HELP
