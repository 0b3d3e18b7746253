"""What every ``eyriectl`` command shares: the home, the consoles, the client, and the stable exit codes.

Errors become exit codes in one place (`EyriectlGroup.invoke`): a command raises our exceptions and never
calls ``sys.exit`` itself. Nothing here loads rich, anyio or the async client until a command uses them:
``ps`` and ``status`` answer without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import IO, Any

import click

from supervisor.cli._exits import (
    EXIT_DAEMON_DOWN,
    EXIT_DEGRADED,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Failure,
)
from supervisor.cli._plain import printable
from supervisor.cli._session import Cli
from supervisor.errors import DaemonNotRunning, EyrieError

__all__ = [
    "EXIT_DAEMON_DOWN",
    "EXIT_DEGRADED",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "OFFLINE_NOTE",
    "Cli",
    "CommandFailed",
    "DaemonDown",
    "Degraded",
    "EyriectlGroup",
]

OFFLINE_NOTE = "eyried is not running; the change applies at its next start"


class CommandFailed(click.ClickException):
    """A failure explained to the user by its message; the command exits 1."""

    exit_code = EXIT_FAILURE

    def show(self, file: IO[Any] | None = None) -> None:
        if self.message:
            click.echo(f"eyriectl: {printable(self.message, lines=True)}", err=True, file=file)


class DaemonDown(CommandFailed):
    """The command needed eyried and found none; exits 3."""

    exit_code = EXIT_DAEMON_DOWN


class Degraded(CommandFailed):
    """The command answered in full and found the fleet not as desired (what is wrong is in its output);
    exits 4."""

    exit_code = EXIT_DEGRADED


class EyriectlGroup(click.Group):
    """Maps our exceptions to the documented exit codes: a `Failure` → its own, DaemonNotRunning → 3, any
    other EyrieError → 1.

    Its help lists the commands from `short_help_of` (name → line) without importing them.
    """

    short_help_of: Mapping[str, str] = MappingProxyType({})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.short_help_of:
                rows.append((name, self.short_help_of[name]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Failure as exc:
            ending = {EXIT_DAEMON_DOWN: DaemonDown, EXIT_DEGRADED: Degraded}.get(exc.exit_code, CommandFailed)
            raise ending(exc.message) from None
        except DaemonNotRunning as exc:
            raise DaemonDown(str(exc)) from None
        except EyrieError as exc:
            raise CommandFailed(str(exc)) from None
