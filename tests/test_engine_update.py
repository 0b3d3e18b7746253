"""Engine.update (restart only on a process change, policies live) and Engine.remove."""

from __future__ import annotations

import dataclasses

import pytest

from supervisor.errors import NotFound
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import (
    fast_health,
    fast_restart,
    faulty,
    make_runtime,
    process_gone,
    running_engine,
    wait_instance,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


class TestUpdate:
    async def test_changed_command_restarts_only_that_instance(self, store: Store) -> None:
        """A new argv restarts the changed instance with it; the other instance keeps its process."""
        changed = make_runtime(store, "changed", faulty())
        other = make_runtime(store, "other", faulty())
        async with running_engine(store) as engine:
            for rt in (changed, other):
                await engine.add(rt)
            old_pid = (await engine.start(changed.instance_id, wait=True)).pid
            other_pid = (await engine.start(other.instance_id, wait=True)).pid
            new_rt = dataclasses.replace(changed, argv=faulty("--tcp"))
            assert await engine.update(new_rt) == "restarted"
            inst = await wait_instance(
                engine, changed.instance_id, lambda i: i.status is InstanceStatus.RUNNING and i.pid != old_pid
            )
            assert inst.cmdline is not None and inst.cmdline[-1] == "--tcp"
            assert old_pid is not None and process_gone(old_pid)
            assert engine.get(other.instance_id).pid == other_pid
            assert engine.runtime(changed.instance_id) is new_rt

    async def test_policy_change_applies_live_without_restart(self, store: Store) -> None:
        """New restart/health policies are taken as they are: same process, runtime replaced."""
        rt = make_runtime(store, "tuned", faulty())
        async with running_engine(store) as engine:
            await engine.add(rt)
            pid = (await engine.start(rt.instance_id, wait=True)).pid
            new_rt = dataclasses.replace(
                rt, restart=fast_restart(max_retries=9), health=fast_health(interval=0.2)
            )
            assert await engine.update(new_rt) == "updated"
            assert engine.runtime(rt.instance_id) is new_rt
            assert engine.get(rt.instance_id).pid == pid

    async def test_identical_runtime_is_unchanged(self, store: Store) -> None:
        """The same launch data and policies change nothing."""
        rt = make_runtime(store, "same", faulty(), autostart=False)
        async with running_engine(store) as engine:
            await engine.add(rt)
            assert await engine.update(dataclasses.replace(rt)) == "unchanged"

    async def test_new_command_for_a_stopped_instance_is_used_at_next_start(self, store: Store) -> None:
        """Changing a stopped instance's argv restarts nothing; its next start runs the new command."""
        rt = make_runtime(store, "later", faulty(), autostart=False)
        async with running_engine(store) as engine:
            await engine.add(rt)
            new_rt = dataclasses.replace(rt, argv=faulty("--tcp"))
            assert await engine.update(new_rt) == "updated"
            inst = await engine.start(rt.instance_id, wait=True)
            assert inst.cmdline is not None and inst.cmdline[-1] == "--tcp"


class TestRemove:
    async def test_remove_stops_the_process_and_forgets_the_instance(self, store: Store) -> None:
        """remove() stops the tree and drops the actor; instance.json stays, recorded stopped."""
        rt = make_runtime(store, "leaving", faulty())
        async with running_engine(store) as engine:
            await engine.add(rt)
            pid = (await engine.start(rt.instance_id, wait=True)).pid
            await engine.remove(rt.instance_id)
            assert pid is not None and process_gone(pid)
            with pytest.raises(NotFound):
                engine.get(rt.instance_id)
            assert rt.instance_id not in engine
            inst = store.get(rt.instance_id)
            assert (inst.status, inst.status_detail) == (InstanceStatus.STOPPED, "removed from supervision")
            await engine.add(rt)  # it can come back
            assert rt.instance_id in engine
