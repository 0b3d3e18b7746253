"""A fleet starting: the port checks of a crowd made in one worker-thread call (a stranger on a claimed port
is still found before the spawn), and the supervisor's lines written through the descriptor each spawn
opened."""

from __future__ import annotations

import functools
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
import structlog

from supervisor.engine._launch import check_port, spawn_child
from supervisor.engine._logs import InstanceLog
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import fast_restart, make_runtime, running_engine, wait_for, wait_instance
from tests._services import bare_services

pytestmark = pytest.mark.anyio


@contextmanager
def listening() -> Iterator[int]:
    """A stranger (this test process) listening on a free port for the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def _no_sweep() -> None:
    pass


class TestPortChecksOfACrowd:
    async def test_one_thread_call_claims_every_port_and_finds_the_stranger(self, tmp_path: Path) -> None:
        """Checks asked for together are made in one batch: each port is claimed for its instance, and the
        one a stranger listens on is reported held, naming it, before anything is spawned."""
        store = Store(tmp_path / "instances")
        services = bare_services(store, tmp_path / "claims")
        services.writing.surge(anyio.current_time(), 60.0)  # a fleet starting
        log = structlog.get_logger("test")
        with listening() as held:
            runtimes = [make_runtime(store, f"agent-{i}", ["true"]) for i in range(5)]
            runtimes.append(make_runtime(store, "squatted", ["true"], port=held))
            found: dict[str, str | None] = {}

            async def check(index: int) -> None:
                rt = runtimes[index]
                found[rt.name] = await check_port(rt, services, _no_sweep, log)

            async with anyio.create_task_group() as tg:
                for index in range(len(runtimes)):
                    tg.start_soon(check, index)
        assert services.port_checks.batches == 1
        assert sorted(name for name, holder in found.items() if holder is None) == [
            f"agent-{i}" for i in range(5)
        ]
        assert (found["squatted"] or "").startswith(f"pid {os.getpid()} (")
        claimed = {claim.port: claim.owner for claim in services.claims.claims()}
        for rt in runtimes:
            owner = claimed[rt.port]
            assert owner is not None and owner.instance_id == rt.instance_id

    async def test_a_fleet_added_at_once_runs_but_the_squatted_instance(self, home: Home) -> None:
        """Through the engine: every instance of a fleet added in one go runs, except the one whose port a
        stranger holds, which fails naming the holder (no relocator)."""
        store = Store(home)
        never = fast_restart(policy="never")
        with listening() as held:
            runtimes = [make_runtime(store, f"sleeper-{i}", ["sleep", "30"], restart=never) for i in range(6)]
            squatted = make_runtime(store, "squatted", ["sleep", "30"], port=held, restart=never)
            async with running_engine(store) as engine:
                for rt in [*runtimes, squatted]:
                    await engine.add(rt)
                for rt in runtimes:
                    await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING)
                failed = await wait_instance(
                    engine, squatted.instance_id, lambda i: i.status is InstanceStatus.ERROR
                )
        assert (failed.last_error or "").startswith(f"port {held} is held by pid {os.getpid()} (")


class TestSpawnsOfACrowd:
    async def test_a_crowds_spawns_are_made_in_one_batch_each_child_with_its_own_log(
        self, tmp_path: Path
    ) -> None:
        """Spawns asked for together run in one batch of worker-thread calls: every child runs in its own
        session, its output in its own log, and each instance's lines go through the descriptor its spawn
        opened."""
        store = Store(tmp_path / "instances")
        services = bare_services(store, tmp_path / "claims")
        services.spawning.surge(anyio.current_time(), 60.0)  # a fleet starting
        log = structlog.get_logger("test")
        runtimes = [
            make_runtime(store, f"agent-{i}", ["sh", "-c", "echo up; exec sleep 30"]) for i in range(6)
        ]
        logs = {rt.name: InstanceLog() for rt in runtimes}
        procs = {}

        async def start(index: int) -> None:
            rt = runtimes[index]
            procs[rt.name] = await spawn_child(rt, services, logs[rt.name], log)

        try:
            async with anyio.create_task_group() as tg:
                for index in range(len(runtimes)):
                    tg.start_soon(start, index)
            assert services.spawns.batches == 1
            for rt in runtimes:
                proc = procs[rt.name]
                assert os.getsid(proc.pid) == proc.pid
                await wait_for(functools.partial(_holds, rt.log_path, "up\n"), 5.0, what="the child's output")
                logs[rt.name].note(rt, f"started pid {proc.pid}")
                assert rt.log_path.read_text().splitlines()[1].endswith(f"eyried: started pid {proc.pid}")
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
            for instance_log in logs.values():
                instance_log.lines.close()


class TestSpawnLines:
    async def test_each_spawn_writes_its_started_line_through_the_spawns_descriptor(self, home: Home) -> None:
        """An agent that exits at once and is restarted: its log holds one ``started pid`` line for each
        process, beside that process's own output, and the daemon holds at most one descriptor on the log
        (each spawn's replaces the previous one)."""
        store = Store(home)
        restart = fast_restart(policy="always", initial_delay=0.0, max_retries=1000)
        rt = make_runtime(store, "blinker", ["sh", "-c", "echo ran $$; sleep 0.05"], restart=restart)
        async with running_engine(store) as engine:
            await engine.add(rt)

            def started() -> list[str]:
                text = rt.log_path.read_text() if rt.log_path.exists() else ""
                return [line for line in text.splitlines() if "eyried: started pid" in line]

            await wait_for(lambda: len(started()) >= 5, 15.0, what="five spawns")
            await engine.stop(rt.instance_id, wait=True)
            held = [fd for fd in os.listdir("/proc/self/fd") if _points_at(fd, rt.log_path)]
            lines = rt.log_path.read_text().splitlines()
        assert len(held) <= 1
        pids = [line.split("started pid ")[1].split()[0] for line in lines if "eyried: started pid" in line]
        assert len(pids) == len(set(pids)) >= 5
        ran = {line.split()[1] for line in lines if line.startswith("ran ")}
        assert set(pids[:-1]) <= ran  # every process but perhaps the one stopped wrote to the same file


def _points_at(fd: str, path: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except OSError:
        return False


def _holds(path: Path, text: str) -> bool:
    return path.read_text() == text
