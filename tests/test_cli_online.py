"""eyriectl as a real subprocess against a live control server: an in-memory target behind the real socket."""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from supervisor.control.app import create_app
from supervisor.control.schema import Event, ReloadResult
from supervisor.control.server import serve
from supervisor.errors import HierarchyError
from supervisor.paths import Home
from supervisor.testing import MemoryTarget

pytestmark = pytest.mark.anyio

EYRIECTL = Path(sys.executable).parent / "eyriectl"


class Result:
    def __init__(self, code: int, stdout: bytes, stderr: bytes) -> None:
        self.code = code
        self.stdout = stdout.decode()
        self.stderr = stderr.decode()


async def eyriectl(home: Home, *args: str) -> Result:
    with anyio.fail_after(30):
        done = await anyio.run_process([str(EYRIECTL), "--home", str(home.root), *args], check=False)
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def target(home: Home) -> MemoryTarget:
    t = MemoryTarget(str(home.root))
    t.put("alpha", port=43001, restart_count=1, total_restarts=4, uptime_seconds=3725.0)
    t.put("beta", status="stopped", port=43002, flags=["DISABLED"])
    return t


@pytest.fixture
async def daemon(home: Home, target: MemoryTarget) -> AsyncIterator[MemoryTarget]:
    app = create_app(target, keepalive=0.2)
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(serve, app, socket_path=home.socket_path))
        yield target
        tg.cancel_scope.cancel()


class TestPs:
    async def test_json(self, home: Home, daemon: MemoryTarget) -> None:
        """ps --json prints the list of instance objects with the instance keys and flags."""
        result = await eyriectl(home, "ps", "--json")
        assert result.code == 0, result.stderr
        rows = json.loads(result.stdout)
        assert [r["name"] for r in rows] == ["alpha", "beta"]
        for key in (
            "name",
            "id",
            "framework",
            "status",
            "pid",
            "port",
            "restart_count",
            "health_status",
            "flags",
        ):
            assert key in rows[0]
        assert rows[1]["flags"] == ["DISABLED"]

    async def test_table(self, home: Home, daemon: MemoryTarget) -> None:
        """ps prints one row per instance with humanised uptime and flags."""
        result = await eyriectl(home, "ps")
        assert result.code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split()[:3] == ["NAME", "FRAMEWORK", "ROLE"]
        alpha = next(line for line in lines if line.startswith("alpha"))
        assert "running" in alpha and "1h02m" in alpha and "43001" in alpha
        assert "DISABLED" in next(line for line in lines if line.startswith("beta"))


class TestLifecycle:
    async def test_start_wait(self, home: Home, daemon: MemoryTarget) -> None:
        """start NAME... --wait asks for each with wait=1 and exits 0 when all reached running."""
        result = await eyriectl(home, "start", "alpha", "beta", "--wait")
        assert result.code == 0, result.stderr
        assert ("start", "alpha wait=True") in daemon.calls and ("start", "beta wait=True") in daemon.calls
        assert "beta: running, pid 4242, port 43002" in result.stdout

    async def test_wait_failure_exits_1(self, home: Home, daemon: MemoryTarget) -> None:
        """If one instance ends in error, --wait exits 1 naming it; the others are still reported."""
        daemon.outcome["beta"] = "error"
        result = await eyriectl(home, "restart", "--all", "--wait")
        assert result.code == 1
        assert "did not reach running: beta" in result.stderr and "alpha: running" in result.stdout

    async def test_stop_all(self, home: Home, daemon: MemoryTarget) -> None:
        """stop --all stops every provisioned instance, waiting by default; --no-block does not wait."""
        result = await eyriectl(home, "stop", "--all")
        assert result.code == 0, result.stderr
        assert {v.status for v in daemon.instances.values()} == {"stopped"}
        assert ("stop", "alpha wait=True") in daemon.calls
        result = await eyriectl(home, "stop", "--all", "--no-block")
        assert result.code == 0, result.stderr
        assert "alpha: stop requested, now stopped" in result.stdout
        assert ("stop", "alpha wait=False") in daemon.calls

    async def test_unknown_instance(self, home: Home, daemon: MemoryTarget) -> None:
        """An unknown name fails that one request and the command exits 1."""
        result = await eyriectl(home, "start", "alpha", "ghost")
        assert result.code == 1 and "ghost" in result.stderr and "alpha: running" in result.stdout


class TestFleetEdits:
    async def test_add_and_remove(self, home: Home, daemon: MemoryTarget) -> None:
        """add goes through the daemon (printing the new view as JSON); remove passes --purge."""
        added = await eyriectl(home, "add", "gamma", "--framework", "embedded", "--role", "talon", "--json")
        assert added.code == 0, added.stderr
        view = json.loads(added.stdout)
        assert view["name"] == "gamma" and view["hierarchy_role"] == "talon" and view["status"] == "running"
        assert "not running" not in added.stderr and not home.fleet_file.exists()
        removed = await eyriectl(home, "remove", "gamma", "--purge")
        assert removed.code == 0 and ("delete", "gamma purge=True") in daemon.calls

    async def test_add_refused(self, home: Home, daemon: MemoryTarget) -> None:
        """The daemon's refusal (a hierarchy rule here) is printed and exits 1."""
        daemon.fail_next["create"] = HierarchyError("a fleet has exactly one commander: boss, gamma")
        result = await eyriectl(home, "add", "gamma", "--framework", "embedded", "--role", "commander")
        assert result.code == 1 and "exactly one commander: boss, gamma" in result.stderr

    async def test_enable_disable(self, home: Home, daemon: MemoryTarget) -> None:
        """disable/enable go through the daemon; a failing name exits 1 after the others are done."""
        result = await eyriectl(home, "disable", "alpha", "ghost")
        assert result.code == 1 and "alpha: autostart off" in result.stdout and "ghost" in result.stderr
        assert daemon.instances["alpha"].autostart is False
        assert (await eyriectl(home, "enable", "alpha")).code == 0
        assert daemon.instances["alpha"].autostart is True

    async def test_init_with_daemon_running(self, home: Home, daemon: MemoryTarget) -> None:
        """init writes the file and, with eyried up, says how to apply it."""
        result = await eyriectl(home, "init", "--profile", "minimal")
        assert result.code == 0 and "eyriectl reload" in result.stderr and home.fleet_file.exists()


class TestDaemonCommands:
    async def test_status(self, home: Home, daemon: MemoryTarget) -> None:
        """status prints the daemon's summary; --json its object."""
        text = await eyriectl(home, "status")
        assert text.code == 0 and f"home:        {home.root}" in text.stdout
        data = json.loads((await eyriectl(home, "status", "--json")).stdout)
        assert data["instances"] == {"running": 1, "stopped": 1}

    async def test_reload(self, home: Home, daemon: MemoryTarget) -> None:
        """reload prints what changed; a rejected reload prints the error and exits 1."""
        daemon.reload_result = ReloadResult(
            ok=True, added=["gamma"], unchanged=["alpha", "beta"], seconds=0.012
        )
        ok = await eyriectl(home, "reload")
        assert ok.code == 0 and "added: gamma" in ok.stdout and "unchanged: 2" in ok.stdout
        daemon.reload_result = ReloadResult(ok=False, error="fleet.yaml:7: instances.0.framework: unknown")
        rejected = await eyriectl(home, "reload")
        assert rejected.code == 1 and "fleet.yaml:7" in rejected.stderr

    async def test_reload_dry_run(self, home: Home, daemon: MemoryTarget) -> None:
        """reload --dry-run asks for the plan, prints it as one, and never asks for a reload."""
        daemon.reload_result = ReloadResult(ok=True, added=["gamma"], removed=["beta"], unchanged=["alpha"])
        plan = await eyriectl(home, "reload", "--dry-run")
        assert plan.code == 0 and plan.stdout.startswith("plan (nothing applied):")
        assert "would add: gamma" in plan.stdout
        assert "would remove (directories to the trash): beta" in plan.stdout
        as_json = json.loads((await eyriectl(home, "reload", "--dry-run", "--json")).stdout)
        assert as_json["dry_run"] is True and as_json["removed"] == ["beta"]
        assert ("reload", "") not in daemon.calls and ("plan_reload", "") in daemon.calls

    async def test_recent_events(self, home: Home, daemon: MemoryTarget) -> None:
        """events prints the recent events, newest last; --json one object per line."""
        with anyio.fail_after(5):
            while True:
                if daemon.subscriber_count >= 1:
                    break
                await anyio.sleep(0.01)
        for status in ("starting", "running"):
            daemon.publish(
                Event(time=datetime.now(UTC), event="transition", instance="alpha", to_status=status)
            )
        with anyio.fail_after(10):
            while True:
                result = await eyriectl(home, "events", "-n", "5", "--json")
                if len(result.stdout.splitlines()) == 2:
                    break
        assert [json.loads(line)["to_status"] for line in result.stdout.splitlines()] == [
            "starting",
            "running",
        ]

    async def test_follow_events(self, home: Home, daemon: MemoryTarget) -> None:
        """events -f prints events as they happen and ends cleanly on Ctrl-C."""
        async with await anyio.open_process(
            [str(EYRIECTL), "--home", str(home.root), "events", "-f", "-n", "0"]
        ) as proc:
            try:
                await _wait_subscribers(daemon, 2)
                daemon.publish(
                    Event(time=datetime.now(UTC), event="transition", instance="beta", to_status="error")
                )
                line = await _read_line(proc)
                assert "beta" in line and "→ error" in line
                proc.send_signal(signal.SIGINT)
                with anyio.fail_after(5):
                    assert await proc.wait() == 0
            finally:
                if proc.returncode is None:  # a failed check must not leave the test waiting on it
                    proc.kill()


async def _wait_subscribers(target: MemoryTarget, count: int) -> None:
    with anyio.fail_after(10):
        while True:
            if target.subscriber_count >= count:
                return
            await anyio.sleep(0.01)


async def _read_line(proc: Process) -> str:
    assert proc.stdout is not None
    data = b""
    with anyio.fail_after(5):
        while b"\n" not in data:
            data += await proc.stdout.receive()
    return data.decode()
