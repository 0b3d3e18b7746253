"""``eyriectl ps``, ``list`` and ``status`` without click: click and what it loads (``inspect``, ``uuid``,
``datetime``…) are a third of those commands' start-up, and they must answer at once.

The parser recognises exactly these commands with exactly their options (`QUICK_COMMANDS`, the root's
``--home``; a test holds them equal to the click definitions' parameters) and says None to anything else:
help, an argument, an unknown or repeated option, shell completion. click then parses the same command line
and answers as it always did, its usage errors included. The commands run the same functions either way
(`supervisor.cli._look`) and end with the same messages and exit codes.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from supervisor.cli._exits import EXIT_DAEMON_DOWN, EXIT_FAILURE, EXIT_OK, Failure
from supervisor.cli._plain import printable
from supervisor.errors import DaemonNotRunning, EyrieError

__all__ = ["QUICK_COMMANDS", "ROOT_OPTIONS", "QuickCall", "QuickCommand", "parse", "run_quick"]

COMPLETION_VARIABLE = "_EYRIECTL_COMPLETE"
"""Set when a shell asks click for completions: those are click's to answer."""


class QuickCommand:
    """A command's options: flag → parameter name, option taking a value → parameter name.

    A plain class, as `QuickCall`: ``typing.NamedTuple`` would load ``typing``, a tenth of the imports of
    ``eyriectl ps`` (no module on this path imports it at run time).
    """

    __slots__ = ("flags", "options")

    def __init__(self, flags: Mapping[str, str], options: Mapping[str, str] = MappingProxyType({})) -> None:
        self.flags = flags
        self.options = options


_LISTING = QuickCommand(flags={"--json": "as_json"}, options={"--project": "project"})

QUICK_COMMANDS: Mapping[str, QuickCommand] = MappingProxyType(
    {"ps": _LISTING, "list": _LISTING, "status": QuickCommand(flags={"--json": "as_json"})}
)
"""The commands run without click; ``status NAME`` (an argument) goes to click."""

ROOT_OPTIONS: Mapping[str, str] = MappingProxyType({"--home": "home"})
"""The root options taking a value that the quick path accepts before the command."""


class QuickCall:
    """A command line the quick path answers: the command and its parameters by name."""

    __slots__ = ("command", "home", "params")

    def __init__(self, command: str, home: str | None, params: Mapping[str, object]) -> None:
        self.command = command
        self.home = home
        self.params = params

    def _key(self) -> tuple[str, str | None, dict[str, object]]:
        return self.command, self.home, dict(self.params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuickCall) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and its params may change

    def __repr__(self) -> str:
        return f"QuickCall{self._key()!r}"


def _options(
    tokens: Sequence[str], flags: Mapping[str, str], options: Mapping[str, str]
) -> dict[str, object]:
    """Parameter name → value of ``tokens``, all of them options; raises LookupError for anything click
    would have to judge."""
    params: dict[str, object] = {}
    rest = list(tokens)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name in flags and not equals and flags[name] not in params:
            params[flags[name]] = True
        elif name in options and options[name] not in params:
            if not equals:
                if not rest:
                    raise LookupError(name)
                value = rest.pop(0)
            if value.startswith("-"):
                raise LookupError(name)
            params[options[name]] = value
        else:
            raise LookupError(name)
    return params


def parse(argv: Sequence[str]) -> QuickCall | None:
    """The quick call ``argv`` (without the program's name) stands for; None when click must parse it."""
    if COMPLETION_VARIABLE in os.environ:
        return None
    at = next((i for i, token in enumerate(argv) if token in QUICK_COMMANDS), None)
    if at is None:
        return None
    command = QUICK_COMMANDS[argv[at]]
    try:
        root = _options(argv[:at], {}, ROOT_OPTIONS)
        params = _options(argv[at + 1 :], command.flags, command.options)
    except LookupError:
        return None
    home = root.get("home")
    if isinstance(home, str) and os.path.isfile(home):
        return None  # click's "is a file" error
    return QuickCall(argv[at], home if isinstance(home, str) else None, params)


def _say(message: str) -> None:
    if message:
        sys.stderr.write(f"eyriectl: {printable(message, lines=True)}\n")
        sys.stderr.flush()


def _run(call: QuickCall) -> None:
    from pathlib import Path

    from supervisor.cli._look import show_instances, show_status
    from supervisor.cli._session import Cli
    from supervisor.paths import Home

    cli = Cli(Home.resolve(None if call.home is None else Path(call.home)))  # --home "" is ".", as in click
    as_json = call.params.get("as_json") is True
    if call.command == "status":
        show_status(cli, as_json)
        return
    project = call.params.get("project")
    show_instances(cli, as_json, project if isinstance(project, str) else None)


def run_quick(argv: Sequence[str]) -> int | None:
    """Run ``argv`` without click and return its exit code; None when it is click's to run."""
    call = parse(argv)
    if call is None:
        return None
    try:
        _run(call)
    except Failure as exc:
        _say(exc.message)
        return exc.exit_code
    except DaemonNotRunning as exc:
        _say(str(exc))
        return EXIT_DAEMON_DOWN
    except EyrieError as exc:
        _say(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("\nAborted!\n")  # as click: the blank line closes the terminal's ^C echo
        return EXIT_FAILURE
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # the reader went away (``eyriectl ps | head``): quiet, as click is, also at the final flush
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return EXIT_OK
