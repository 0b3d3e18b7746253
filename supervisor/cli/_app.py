"""What every ``eyriectl`` command shares: the home, the consoles, the client, and the stable exit codes.

Errors become exit codes in one place (`EyriectlGroup.invoke`): a command raises our exceptions and never
calls ``sys.exit`` itself. Nothing here loads rich, anyio or the async client until a command uses them:
``ps`` and ``status`` answer without them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from supervisor.cli._plain import printable
from supervisor.errors import DaemonNotRunning, EyrieError
from supervisor.paths import Home

if TYPE_CHECKING:
    from rich.console import Console

    from supervisor.client import ControlClient

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

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DAEMON_DOWN = 3
EXIT_DEGRADED = 4

OFFLINE_NOTE = "eyried is not running; the change applies at its next start"

T = TypeVar("T")


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
    """Maps our exceptions to the documented exit codes: DaemonNotRunning → 3, any other EyrieError → 1.

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
        except DaemonNotRunning as exc:
            raise DaemonDown(str(exc)) from None
        except EyrieError as exc:
            raise CommandFailed(str(exc)) from None


def _console(stream: IO[str], *, stderr: bool = False) -> Console:
    from rich.console import Console

    class PrintableConsole(Console):
        """A console that shows every string it is given through `printable` (lines kept): a message that
        quotes a process name or a file cannot reach the terminal as an escape sequence."""

        def print(self, *objects: Any, **kwargs: Any) -> None:
            super().print(*(printable(o, lines=True) if isinstance(o, str) else o for o in objects), **kwargs)

    terminal = stream.isatty()
    # emoji=False: rich would turn ":rocket:" in a goal or a note (and in --json output) into an emoji.
    width = None if terminal else 250
    return PrintableConsole(stderr=stderr, highlight=False, emoji=False, soft_wrap=True, width=width)


@dataclass
class Cli:
    """The object behind ``click.pass_obj``."""

    home: Home

    @functools.cached_property
    def out(self) -> Console:
        """The rich console on stdout, made on first use."""
        return _console(sys.stdout)

    @functools.cached_property
    def err(self) -> Console:
        """The rich console on stderr, made on first use."""
        return _console(sys.stderr, stderr=True)

    def client(self) -> ControlClient:
        from supervisor.client import ControlClient

        return ControlClient(self.home)

    def run(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run one async step of a command (the CLI stays synchronous around it)."""
        import anyio

        return anyio.run(fn)

    def note(self, message: str) -> None:
        """A remark for the human, on stderr so that stdout stays data."""
        sys.stderr.write(printable(message, lines=True) + "\n")
        sys.stderr.flush()

    def data(self, text: str) -> None:
        """Data for stdout (a table, a JSON document), written as it is."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    @property
    def interactive(self) -> bool:
        return self.out.is_terminal
