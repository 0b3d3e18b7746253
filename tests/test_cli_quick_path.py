"""What keeps ``eyriectl ps``, ``status`` and ``--help`` fast, held structurally (the timings are in
bench/cli_bench.py): they load none of the heavy libraries, the root help imports no command, and its
one-line summaries are the commands' own."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import anyio
import click
import pytest

from supervisor.cli.main import SHORT_HELP, cli
from supervisor.control.app import create_app
from supervisor.control.server import serve
from supervisor.paths import Home
from supervisor.testing import MemoryTarget

SHARED = {
    "supervisor.cli._exits",
    "supervisor.cli._front",
    "supervisor.cli._lazy",
    "supervisor.cli._logging",
    "supervisor.cli._plain",
    "supervisor.cli._root",
    "supervisor.cli._session",
}
"""The entry point's modules and what every command shares: loading them loads no command."""

HEAVY = ("rich", "pydantic", "httpx", "httpcore", "anyio", "structlog", "importlib.metadata", "ruamel")

LISTING_DOES_WITHOUT = (*HEAVY, "click", "typing", "hashlib", "_hashlib", "importlib.util")
"""What ``ps`` and ``list`` also do without, each once a share of their start-up (bench/cli_bench.py): click,
typing (the quick path's modules import it for the type checker only), OpenSSL's hashes (the socket's name is
hashed by CPython's own) and importlib.util (only for structlog)."""

# Runs eyriectl in this interpreter, then reports which heavy modules it loaded and which command modules.
PROBE = r"""
import json, sys
from supervisor.cli.main import main
wanted = json.loads(sys.argv[1])
sys.argv = ["eyriectl", *sys.argv[2:]]
try:
    main()
except SystemExit:
    pass
heavy = [m for m in wanted if m in sys.modules]
commands = sorted(m for m in sys.modules if m.startswith("supervisor.cli._") and m != "supervisor.cli._app")
sys.stderr.write("\nLOADED " + json.dumps({"heavy": heavy, "commands": commands}) + "\n")
"""


def loaded(home: Home, *args: str, wanted: tuple[str, ...] = HEAVY) -> dict[str, list[str]]:
    """The modules of ``wanted`` that ``eyriectl --home HOME ARGS`` loaded, and the command modules."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(wanted), "--home", str(home.root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    report: dict[str, list[str]] = json.loads(result.stderr.rpartition("\nLOADED ")[2])
    return report


@contextlib.asynccontextmanager
async def operator_api(home: Home) -> AsyncIterator[None]:
    target = MemoryTarget(str(home.root))
    target.put("alpha")
    home.ensure_run_dir()
    home.pid_file.write_text(f"{os.getpid()}\n")
    async with anyio.create_task_group() as tg:
        await tg.start(
            functools.partial(
                serve, create_app(target), socket_path=home.socket_path, abstract_socket=home.operator_socket
            )
        )
        yield
        tg.cancel_scope.cancel()


class TestImports:
    @pytest.mark.anyio
    @pytest.mark.parametrize("args", [["ps"], ["ps", "--json"], ["list"], ["status"], ["status", "--json"]])
    async def test_quick_commands_load_no_heavy_library(self, home: Home, args: list[str]) -> None:
        """ps, list and status against a running eyried load neither rich, pydantic, httpx, anyio nor
        structlog."""
        async with operator_api(home):
            with anyio.fail_after(60):
                report = await anyio.to_thread.run_sync(functools.partial(loaded, home, *args))
        assert report["heavy"] == []

    @pytest.mark.anyio
    @pytest.mark.parametrize("args", [["ps"], ["ps", "--json"], ["list", "--project", "p"]])
    async def test_listing_loads_only_what_it_needs(self, home: Home, args: list[str]) -> None:
        """The listing against a running eyried loads none of `LISTING_DOES_WITHOUT`."""
        async with operator_api(home):
            with anyio.fail_after(60):
                report = await anyio.to_thread.run_sync(
                    functools.partial(loaded, home, *args, wanted=LISTING_DOES_WITHOUT)
                )
        assert report["heavy"] == []

    def test_root_help_imports_no_command(self, home: Home) -> None:
        """``eyriectl --help`` lists the commands without importing one of them."""
        report = loaded(home, "--help")
        assert report["heavy"] == []
        assert [m for m in report["commands"] if m not in SHARED] == []


class TestRootHelp:
    def test_summaries_are_the_commands_own(self) -> None:
        """Every summary of the root help is the command's own short help, and every command has one."""
        ctx = click.Context(cli)
        assert set(SHORT_HELP) == set(cli.list_commands(ctx))
        for name, line in SHORT_HELP.items():
            command = cli.get_command(ctx, name)
            assert command is not None
            assert command.get_short_help_str(limit=1000) == line, name
