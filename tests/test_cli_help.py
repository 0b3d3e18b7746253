"""eyriectl's help texts, checked in-process: every command documents itself with examples."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from supervisor.cli.main import cli

COMMANDS = sorted(cli.commands)


class TestHelp:
    def test_command_set(self) -> None:
        """The documented commands are exactly the ones offered."""
        assert COMMANDS == [
            "add",
            "daemon",
            "disable",
            "doctor",
            "enable",
            "events",
            "init",
            "install",
            "list",
            "logs",
            "migrate",
            "projects",
            "ps",
            "reload",
            "remove",
            "restart",
            "secret",
            "start",
            "status",
            "stop",
            "top",
            "trash",
            "uninstall",
        ]

    @pytest.mark.parametrize("command", COMMANDS)
    def test_examples(self, command: str) -> None:
        """Each command's --help shows usage and at least one example invocation of itself."""
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Examples:" in result.output
        example = "eyriectl ps" if command == "list" else f"eyriectl {command}"
        assert example in result.output

    def test_root_documents_exit_codes(self) -> None:
        """The top-level help lists every exit code."""
        result = CliRunner().invoke(cli, ["--help"])
        for line in ("0  success", "1  failure", "2  usage error", "3  eyried is not running"):
            assert line in result.output

    def test_version(self) -> None:
        """--version prints the package version."""
        result = CliRunner().invoke(cli, ["--version"])
        assert result.exit_code == 0 and result.output.startswith("eyriectl, version ")
