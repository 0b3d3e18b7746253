"""A new engine on the same store: adoption, crashes while it was down, desired state vs boot id."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from supervisor.engine import Engine, InstanceRuntime, procfs, spawn
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry
from supervisor.store import Store
from supervisor.testing import (
    faulty,
    make_runtime,
    process_gone,
    reap,
    running_engine,
    wait_for,
    wait_instance,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


async def run_then_detach(store: Store, runtimes: list[InstanceRuntime], **options: object) -> list[int]:
    """Start the instances under one engine, then drop that engine without stopping them (a daemon crash).
    Its port claims live beside the store, as `running_engine`'s do: a test's ports are the test's own."""
    options.setdefault("claims", ClaimRegistry(store.root.parent / "port-claims"))
    engine = Engine(store, **options)  # type: ignore[arg-type]
    pids: list[int] = []
    async with anyio.create_task_group() as tg:
        await tg.start(engine.run)
        for rt in runtimes:
            await engine.add(rt)
            inst = await engine.start(rt.instance_id, wait=True)
            assert inst.status is InstanceStatus.RUNNING and inst.pid is not None
            pids.append(inst.pid)
        await engine.detach()
    return pids


class TestAdoption:
    async def test_live_processes_are_adopted_with_zero_restarts(self, store: Store) -> None:
        """After the engine goes away, a new one adopts every live process: same pids, running, 0 restarts."""
        runtimes = [make_runtime(store, f"agent-{n}", faulty()) for n in range(3)]
        pids = await run_then_detach(store, runtimes)
        assert not any(process_gone(pid) for pid in pids)
        async with running_engine(store) as engine:
            for rt in runtimes:
                await engine.add(rt)
            for rt, pid in zip(runtimes, pids, strict=True):
                inst = await wait_instance(
                    engine, rt.instance_id, lambda i: i.status_detail.startswith("adopted")
                )
                assert (inst.status, inst.pid, inst.restart_count, inst.total_restarts) == (
                    InstanceStatus.RUNNING,
                    pid,
                    0,
                    0,
                )

    async def test_adopted_process_is_watched_and_restarted_when_it_dies(self, store: Store) -> None:
        """An adopted process is watched through its pidfd: killing it gets a new one started."""
        rt = make_runtime(store, "watched", faulty())
        (pid,) = await run_then_detach(store, [rt])
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: engine.get(rt.instance_id).pid == pid)
            os.kill(pid, signal.SIGKILL)
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING and i.pid != pid
            )
            assert inst.restart_count == 1 and inst.last_exit is not None and inst.last_exit.signal == 9

    async def test_process_that_died_while_down_is_restarted_with_restart_count_one(
        self, store: Store
    ) -> None:
        """A recorded process gone when the engine comes back is a crash: restarted with count 1."""
        rt = make_runtime(store, "casualty", faulty())
        (pid,) = await run_then_detach(store, [rt])
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: reap(pid))
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING and i.pid != pid
            )
            assert inst.restart_count == 1 and inst.total_restarts == 1
            assert inst.last_exit is not None and inst.last_exit.code is None

    async def test_recorded_child_that_died_meanwhile_is_reaped_with_its_status(self, store: Store) -> None:
        """A recorded process that ended as our own zombie (as after a re-exec) is collected, its signal
        recorded in last_exit, and the instance restarted."""
        rt = make_runtime(store, "zombie", faulty())
        (pid,) = await run_then_detach(store, [rt])
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: process_gone(pid))
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING and i.pid != pid
            )
            assert inst.restart_count == 1 and inst.last_exit is not None and inst.last_exit.signal == 9
            assert procfs.read_stat(pid) is None  # collected, not left a zombie

    async def test_a_retitled_process_is_adopted(self, store: Store) -> None:
        """A program that rewrites its process title after start (OpenClaw's gateway shows
        ``openclaw-gateway``) no longer shows the recorded command line: its start time and marker still make
        it the recorded process, so it is adopted, not restarted."""
        rt = make_runtime(store, "retitled", faulty("--retitle", "openclaw-gateway"))
        (pid,) = await run_then_detach(store, [rt])
        await wait_for(lambda: procfs.read_cmdline(pid)[:1] == ["openclaw-gateway"])
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status_detail.startswith("adopted")
            )
            assert (inst.pid, inst.restart_count) == (pid, 0)

    async def test_a_script_behind_its_interpreter_is_adopted(self, store: Store, tmp_path: Path) -> None:
        """A program started through its ``#!`` line runs as ``interpreter script args``: still adopted."""
        script = tmp_path / "agent-script"
        script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(300)\n")
        script.chmod(0o755)
        rt = make_runtime(store, "scripted", [str(script), "--port", "1"])
        (pid,) = await run_then_detach(store, [rt])
        assert procfs.read_cmdline(pid) == [sys.executable, str(script), "--port", "1"]
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status_detail.startswith("adopted")
            )
            assert (inst.pid, inst.restart_count) == (pid, 0)

    async def test_unrecorded_process_of_the_instance_does_not_run_twice(self, store: Store) -> None:
        """A process carrying the instance's marker that no record mentions (spawned just before a crash)
        is ended before the instance starts, so only one copy runs."""
        rt = make_runtime(store, "single", faulty())
        env = {k: v for k, v in os.environ.items() if k != "EYRIE_HOME"}
        env["EYRIE_INSTANCE_ID"] = rt.instance_id
        orphan = spawn(faulty(), env=env, cwd=rt.cwd, log_path=rt.log_path)
        await wait_for(lambda: f"faulty {orphan.pid} starting" in rt.log_path.read_text())
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING)
            assert inst.pid != orphan.pid and inst.restart_count == 0
            assert (await orphan.wait()).code == 0


class TestDesiredStateAndBoot:
    async def test_stop_holds_across_a_daemon_restart(self, store: Store) -> None:
        """A stop holds under a new engine in the same boot, even with autostart on."""
        rt = make_runtime(store, "paused", faulty(), autostart=True)
        async with running_engine(store) as engine:
            await engine.add(rt)
            await engine.start(rt.instance_id, wait=True)
            await engine.stop(rt.instance_id, wait=True)
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = engine.get(rt.instance_id)
            assert (inst.status, inst.desired) == (InstanceStatus.STOPPED, "stopped")

    async def test_shutdown_then_start_brings_the_desired_fleet_back(self, store: Store) -> None:
        """After shutdown, a new engine in the same boot starts what was running, even with autostart off."""
        rt = make_runtime(store, "comeback", faulty(), autostart=False)
        async with running_engine(store) as engine:
            await engine.add(rt)
            await engine.start(rt.instance_id, wait=True)
        assert store.get(rt.instance_id).status is InstanceStatus.STOPPED
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: engine.get(rt.instance_id).status is InstanceStatus.RUNNING)

    async def test_after_a_reboot_autostart_decides(self, store: Store) -> None:
        """With a new boot id a stop from the last boot is forgotten: autostart alone decides."""
        enabled = make_runtime(store, "enabled", faulty(), autostart=True)
        disabled = make_runtime(store, "disabled", faulty(), autostart=False)
        async with running_engine(store) as engine:
            for rt in (enabled, disabled):
                await engine.add(rt)
                await engine.start(rt.instance_id, wait=True)
            await engine.stop(enabled.instance_id, wait=True)
        async with running_engine(store, boot_id="next-boot") as engine:
            await engine.add(enabled)
            await engine.add(disabled)
            await wait_for(lambda: engine.get(enabled.instance_id).status is InstanceStatus.RUNNING)
            inst = engine.get(disabled.instance_id)
            assert (inst.status, inst.desired, inst.desired_boot_id) == (
                InstanceStatus.STOPPED,
                "stopped",
                "next-boot",
            )

    async def test_reboot_with_leftover_processes_starts_fresh(self, store: Store) -> None:
        """Processes of another boot are never adopted: leftovers ended, fresh start with count 0."""
        rt = make_runtime(store, "rebooted", faulty())
        (pid,) = await run_then_detach(store, [rt])
        async with running_engine(store, boot_id="after-reboot") as engine:
            await engine.add(rt)
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING and i.pid != pid
            )
            assert inst.restart_count == 0 and inst.boot_id == "after-reboot"
            assert process_gone(pid)
            await wait_for(lambda: reap(pid))

    async def test_backoff_recorded_before_a_restart_resumes(self, store: Store) -> None:
        """An instance waiting out a backoff when the engine went away keeps its restart count and retries."""
        rt = make_runtime(store, "resumes", faulty("--crash-on-start", "1"))
        engine = Engine(store, claims=ClaimRegistry(store.root.parent / "port-claims"))
        async with anyio.create_task_group() as tg:
            await tg.start(engine.run)
            await engine.add(rt)
            await wait_for(lambda: engine.get(rt.instance_id).restart_count == 2)
            await engine.detach()
        count = store.get(rt.instance_id).restart_count
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: engine.get(rt.instance_id).restart_count > count)
