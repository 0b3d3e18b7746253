"""A restart without delay writes the crash together with the new process, after its exec; a daemon that
dies in between leaves a record naming the dead process, and the next one ends the unrecorded copy."""

from __future__ import annotations

import os
import signal

import anyio
import pytest

from supervisor.engine import Engine, Event
from supervisor.engine._launch import child_env
from supervisor.engine.process import spawn
from supervisor.engine.procfs import marker_of, read_marker
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry
from supervisor.store import Store
from supervisor.testing import (
    fast_restart,
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


class TestRespawnAtOnce:
    async def test_crash_and_new_process_are_written_once_and_announced_in_order(self, store: Store) -> None:
        """``initial_delay: 0``: the crash shows as running → stopped → starting → running, with the new
        pid, the restart counted and the last exit on disk."""
        rt = make_runtime(store, "at-once", faulty(), restart=fast_restart(policy="always", initial_delay=0))
        events: list[Event] = []
        async with running_engine(store, on_event=events.append) as engine:
            await engine.add(rt)
            first = await engine.start(rt.instance_id, wait=True)
            assert first.pid is not None
            events.clear()
            os.kill(first.pid, signal.SIGKILL)
            again = await wait_instance(
                engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING and i.pid != first.pid
            )
            moves = [(e.from_status, e.to_status) for e in events if e.event == "transition"]
            assert moves[:3] == [("running", "stopped"), ("stopped", "starting"), ("starting", "running")]
            assert events[0].pid is None and events[2].pid == again.pid
            on_disk = store.get(rt.instance_id)
            assert (on_disk.pid, on_disk.restart_count) == (again.pid, 1)
            assert on_disk.last_exit is not None and on_disk.last_exit.signal == signal.SIGKILL


class TestDaemonGoneBetweenExecAndRecord:
    async def test_the_unrecorded_process_is_ended_and_one_copy_runs(self, store: Store) -> None:
        """The record names a process that died; an unrecorded one with the instance's marker runs (exec'd,
        not yet written). The next engine ends it and runs exactly one process, the one it records."""
        rt = make_runtime(store, "between", faulty(), restart=fast_restart(policy="always", initial_delay=0))
        claims = ClaimRegistry(store.root.parent / "port-claims")
        engine = Engine(store, claims=claims)
        async with anyio.create_task_group() as tg:
            await tg.start(engine.run)
            await engine.add(rt)
            recorded = (await engine.start(rt.instance_id, wait=True)).pid
            await engine.detach()
        assert recorded is not None
        os.kill(recorded, signal.SIGKILL)
        await wait_for(lambda: reap(recorded))
        unrecorded = spawn(rt.argv, env=child_env(rt), cwd=rt.cwd, log_path=rt.log_path)
        try:
            await wait_for(lambda: read_marker(unrecorded.pid) is not None)
            assert read_marker(unrecorded.pid) == marker_of(rt.env.get("EYRIE_HOME"), rt.instance_id)
            assert store.get(rt.instance_id).pid == recorded
            async with running_engine(store, claims=claims) as engine:
                await engine.add(rt)
                inst = await wait_instance(
                    engine,
                    rt.instance_id,
                    lambda i: i.status is InstanceStatus.RUNNING and i.pid not in (recorded, unrecorded.pid),
                    timeout=20,
                )
                await unrecorded.wait()
                assert process_gone(unrecorded.pid) and not process_gone(inst.pid or 0)
                assert store.get(rt.instance_id).pid == inst.pid
        finally:
            unrecorded.send_signal(signal.SIGKILL)
            await unrecorded.wait()
