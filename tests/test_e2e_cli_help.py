"""Every eyriectl command and subcommand documents itself with examples of its own use (checked in-process:
the help texts need no daemon, and a subprocess per command would only add interpreter start-ups)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from supervisor.cli.main import cli


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``group`` (``("daemon", "restart")`` …), groups included."""
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _paths(command, (*prefix, name))
    return found


PATHS = _paths(cli)


class TestHelp:
    def test_new_commands_are_offered(self) -> None:
        """install, uninstall, doctor and daemon restart are eyriectl commands."""
        assert {("install",), ("uninstall",), ("doctor",), ("daemon",), ("daemon", "restart")} <= set(PATHS)

    @pytest.mark.parametrize("path", PATHS, ids=" ".join)
    def test_examples(self, path: tuple[str, ...]) -> None:
        """The command's --help shows an Examples section invoking that very command."""
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Examples:" in result.output
        own = "eyriectl ps" if path == ("list",) else f"eyriectl {' '.join(path)}"
        assert own in result.output.split("Examples:", 1)[1], result.output
