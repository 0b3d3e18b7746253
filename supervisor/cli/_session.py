"""The object every ``eyriectl`` command is given: the home, the consoles and the client, each made on first
use (nothing here loads click, rich, anyio or the async client until a command uses them)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Coroutine

from supervisor.cli._plain import printable

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from typing import IO, Any, TypeVar

    from rich.console import Console

    from supervisor.client import ControlClient
    from supervisor.paths import Home

    T = TypeVar("T")

__all__ = ["Cli"]


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


class Cli:
    """The object behind ``click.pass_obj``, and what the quick commands are given without click."""

    def __init__(self, home: Home) -> None:
        self.home = home

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
