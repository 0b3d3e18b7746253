"""What every ``eyriectl`` command shares: the home, the consoles, the client, and the stable exit codes.

Errors become exit codes in one place (`EyriectlGroup.invoke`): a command raises our exceptions and never
calls ``sys.exit`` itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import anyio
import click
from rich.console import Console

from supervisor.cli._render import printable
from supervisor.client import ControlClient
from supervisor.errors import DaemonNotRunning, EyrieError
from supervisor.paths import Home

__all__ = [
    "EXIT_DAEMON_DOWN",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "OFFLINE_NOTE",
    "Cli",
    "CommandFailed",
    "DaemonDown",
    "EyriectlGroup",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DAEMON_DOWN = 3

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


class EyriectlGroup(click.Group):
    """Maps our exceptions to the documented exit codes: DaemonNotRunning → 3, any other EyrieError → 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DaemonNotRunning as exc:
            raise DaemonDown(str(exc)) from None
        except EyrieError as exc:
            raise CommandFailed(str(exc)) from None


class _PrintableConsole(Console):
    """A console that shows every string it is given through `printable` (lines kept): a message that
    quotes a process name or a file cannot reach the terminal as an escape sequence."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(printable(o, lines=True) if isinstance(o, str) else o for o in objects), **kwargs)


def _console(stream: IO[str], *, stderr: bool = False) -> Console:
    terminal = stream.isatty()
    return _PrintableConsole(stderr=stderr, highlight=False, soft_wrap=True, width=None if terminal else 250)


@dataclass
class Cli:
    """The object behind ``click.pass_obj``."""

    home: Home
    out: Console = field(default_factory=lambda: _console(sys.stdout))
    err: Console = field(default_factory=lambda: _console(sys.stderr, stderr=True))

    def client(self) -> ControlClient:
        return ControlClient(self.home)

    def run(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run one async step of a command (the CLI stays synchronous around it)."""
        return anyio.run(fn)

    def note(self, message: str) -> None:
        """A remark for the human, on stderr so that stdout stays data."""
        self.err.print(message, markup=False)

    @property
    def interactive(self) -> bool:
        return self.out.is_terminal
