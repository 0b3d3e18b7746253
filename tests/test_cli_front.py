"""``ps``, ``list`` and ``status`` without click (`supervisor.cli._front`): the quick parser accepts exactly
what click's definitions declare and leaves everything else to click, and a command answers the same bytes
and exit code whichever of the two ran it; ``status`` judges "degraded" from the status answer alone, and
still from the listing when the daemon is older than that answer's ``not_as_desired``."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import click
import pytest

from supervisor.cli._front import QUICK_COMMANDS, ROOT_OPTIONS, QuickCall, parse
from supervisor.cli.main import cli
from supervisor.control.app import create_app
from supervisor.control.server import serve
from supervisor.paths import Home
from supervisor.testing import MemoryTarget

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

# Runs eyriectl in this interpreter, by the entry point (quick path) or by click alone, then reports which
# modules it loaded.
RUN = r"""
import json, sys
way = sys.argv[1]
sys.argv = ["eyriectl", *sys.argv[2:]]
try:
    if way == "click":
        from supervisor.cli._root import cli
        cli(prog_name="eyriectl")
    else:
        from supervisor.cli.main import main
        main()
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\nLOADED " + json.dumps({"click": "click" in sys.modules, "code": code}) + "\n")
"""


def run(home: Home, way: str, *args: str) -> tuple[int, str, str, bool]:
    """Exit code, stdout, stderr (without the report) and whether click was loaded."""
    env = {k: v for k, v in os.environ.items() if k != "EYRIE_HOME"}
    result = subprocess.run(
        [sys.executable, "-c", RUN, way, "--home", str(home.root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    stderr, _, report = result.stderr.rpartition("\nLOADED ")
    loaded = json.loads(report)
    return loaded["code"] or 0, result.stdout, stderr, loaded["click"]


def _click_params(command: click.Command) -> tuple[dict[str, str], dict[str, str], int]:
    """Flag → name, option with a value → name, and how many arguments, of a click command."""
    flags: dict[str, str] = {}
    options: dict[str, str] = {}
    arguments = 0
    for param in command.params:
        if isinstance(param, click.Argument):
            arguments += 1
        elif isinstance(param, click.Option) and not param.expose_value:
            continue  # --version: eager, answered by click
        elif isinstance(param, click.Option):
            assert param.name is not None
            for opt in param.opts + param.secondary_opts:
                (flags if param.is_flag else options)[opt] = param.name
    return flags, options, arguments


class TestParserMatchesClick:
    def test_each_quick_command_takes_clicks_options(self) -> None:
        """Each quick command's flags and options are the click command's, by the same parameter names."""
        ctx = click.Context(cli)
        for name, quick in QUICK_COMMANDS.items():
            command = cli.get_command(ctx, name)
            assert command is not None
            flags, options, _ = _click_params(command)
            assert (dict(quick.flags), dict(quick.options)) == (flags, options), name

    def test_root_options(self) -> None:
        """The root options the quick path accepts are the root's options taking a value."""
        flags, options, arguments = _click_params(cli)
        assert dict(ROOT_OPTIONS) == options and not flags and not arguments


class TestParse:
    @pytest.mark.parametrize(
        ("argv", "call"),
        [
            (["ps"], QuickCall("ps", None, {})),
            (["--home", "/h", "ps", "--json"], QuickCall("ps", "/h", {"as_json": True})),
            (["--home=/h", "list", "--project=apollo"], QuickCall("list", "/h", {"project": "apollo"})),
            (
                ["ps", "--project", "apollo", "--json"],
                QuickCall("ps", None, {"project": "apollo", "as_json": True}),
            ),
            (["status", "--json"], QuickCall("status", None, {"as_json": True})),
            (["--home=", "ps"], QuickCall("ps", "", {})),
        ],
    )
    def test_quick_lines(self, argv: list[str], call: QuickCall) -> None:
        assert parse(argv) == call

    @pytest.mark.parametrize(
        "argv",
        [
            [],
            ["--help"],
            ["ps", "--help"],
            ["ps", "-h"],
            ["--version", "ps"],
            ["status", "alpha"],
            ["ps", "--json", "--json"],
            ["ps", "--jsn"],
            ["ps", "--json=1"],
            ["ps", "--project"],
            ["ps", "--project", "--json"],
            ["status", "--project", "x"],
            ["ps", "--", "--json"],
            ["--home", "ps"],
            ["--home", "/h", "--home", "/i", "ps"],
            ["ps", "--home", "/h"],
            ["logs", "ps"],
            ["events"],
        ],
    )
    def test_click_lines(self, argv: list[str]) -> None:
        """Help, an argument, an unknown, repeated or misplaced option: click parses them."""
        assert parse(argv) is None

    def test_home_that_is_a_file_goes_to_click(self, home: Home) -> None:
        """click refuses a --home that is a file: so it is click's to say."""
        home.root.mkdir(parents=True, exist_ok=True)
        a_file = home.root / "file"
        a_file.write_text("")
        assert parse(["--home", str(a_file), "ps"]) is None
        assert parse(["--home", str(home.root / "absent"), "ps"]) == QuickCall(
            "ps", str(home.root / "absent"), {}
        )

    def test_completion_goes_to_click(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("_EYRIECTL_COMPLETE", "bash_complete")
        assert parse(["ps"]) is None


class _WithoutNotAsDesired:
    """Middleware making the app answer as an eyried before ``not_as_desired``: the field taken out of
    ``GET /v1/status``."""

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/status":
            await self.app(scope, receive, send)
            return
        parts: list[MutableMapping[str, Any]] = []

        async def keep(message: MutableMapping[str, Any]) -> None:
            parts.append(message)

        await self.app(scope, receive, keep)
        start, body = parts[0], b"".join(p.get("body", b"") for p in parts[1:])
        data = json.loads(body)
        data.pop("not_as_desired")
        new_body = json.dumps(data).encode()
        start["headers"] = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        start["headers"].append((b"content-length", str(len(new_body)).encode()))
        await send(start)
        await send({"type": "http.response.body", "body": new_body})


@contextlib.asynccontextmanager
async def operator_api(home: Home, target: MemoryTarget, *, older: bool = False) -> AsyncIterator[None]:
    home.ensure_run_dir()
    home.pid_file.write_text(f"{os.getpid()}\n")
    app = create_app(target)
    if older:
        app.add_middleware(_WithoutNotAsDesired)
    async with anyio.create_task_group() as tg:
        await tg.start(
            functools.partial(serve, app, socket_path=home.socket_path, abstract_socket=home.operator_socket)
        )
        yield
        tg.cancel_scope.cancel()


def _fleet(home: Home) -> MemoryTarget:
    target = MemoryTarget(str(home.root))
    target.put("alpha", port=43001, desired="running")
    target.put("beta", status="error", desired="running", last_error="exited 1 three times")
    target.put("gamma", status="stopped", desired="stopped")
    target.put("delta", status="", autostart=True, flags=["MISSING"])
    target.put("omega", status="stopped", desired="running", project_id="apollo")
    return target


LINES = [
    ["ps"],
    ["ps", "--json"],
    ["list", "--project", "apollo"],
    ["ps", "--project=none"],
    ["status"],
    ["status", "--json"],
]


def _timeless(answer: tuple[int, str, str]) -> tuple[int, str, str]:
    """The answer without the daemon's uptime, which moves between two runs."""
    code, out, err = answer
    if out.startswith("{"):
        data = json.loads(out)
        data.pop("uptime_seconds")
        out = json.dumps(data)
    elif out.startswith("eyried "):
        out = out.partition("\n")[2]
    return code, out, err


@pytest.mark.anyio
class TestSameAnswer:
    @pytest.mark.parametrize("older", [False, True], ids=["now", "older-daemon"])
    async def test_quick_and_click_answer_alike(self, home: Home, older: bool) -> None:
        """Each line answers the same stdout, stderr and exit code by the quick path (click not loaded) as by
        click, against this daemon and one older than ``not_as_desired``."""
        async with operator_api(home, _fleet(home), older=older):
            for args in LINES:
                quick = await anyio.to_thread.run_sync(functools.partial(run, home, "quick", *args))
                by_click = await anyio.to_thread.run_sync(functools.partial(run, home, "click", *args))
                assert _timeless(quick[:3]) == _timeless(by_click[:3]), args
                assert not quick[3] and by_click[3], args

    @pytest.mark.parametrize("older", [False, True], ids=["now", "older-daemon"])
    async def test_degraded(self, home: Home, older: bool) -> None:
        """status names every instance not as desired (from the status answer, or from the listing of an
        older daemon) and exits 4; its JSON is the daemon's status with "degraded" added, not_as_desired
        left out."""
        async with operator_api(home, _fleet(home), older=older):
            code, out, _, _ = await anyio.to_thread.run_sync(
                functools.partial(run, home, "quick", "status", "--json")
            )
        data = json.loads(out)
        assert code == 4 and "not_as_desired" not in data
        assert data["degraded"] == [
            "beta is error: exited 1 three times",
            "delta is not provisioned",
            "omega is stopped",
        ]

    async def test_daemon_down(self, home: Home) -> None:
        """With no daemon: ps shows the disk and exits 3, status exits 3; same words either way."""
        for args in (["ps"], ["status"], ["status", "--json"]):
            quick = run(home, "quick", *args)
            by_click = run(home, "click", *args)
            assert quick[:3] == by_click[:3] and quick[0] == 3, args
            assert "eyried is not running" in quick[2]


class TestStatusRoute:
    @pytest.mark.anyio
    async def test_status_answer_lists_not_as_desired(self, home: Home) -> None:
        """GET /v1/status carries the instances in error or meant to run and not running, as listed."""
        from supervisor.cli._quick_client import QuickClient

        async with operator_api(home, _fleet(home)):

            def fetch() -> Any:
                with QuickClient(home) as client:
                    return client.get("/v1/status")

            answer = await anyio.to_thread.run_sync(fetch)
        rows = answer["not_as_desired"]
        assert [row["name"] for row in rows] == ["beta", "delta", "omega"]
        assert rows[0]["last_error"] == "exited 1 three times" and rows[1]["flags"] == ["MISSING"]
