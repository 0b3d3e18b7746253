"""The actor's phase as others see it: written to ``instance.json`` with the status, shown in the API's
instance view, and counted by the daemon's status line."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.daemon._status_line import status_summary
from supervisor.daemon.views import instance_view
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import fast_restart, faulty, make_runtime, running_engine, wait_instance

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


class TestPhaseRecorded:
    async def test_running_and_stopped_show_their_phase_on_disk(self, store: Store) -> None:
        """A running instance is recorded in phase running; stopped by request, in phase idle."""
        rt = make_runtime(store, "steady", faulty())
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await engine.start(rt.instance_id, wait=True)
            assert inst.status is InstanceStatus.RUNNING and inst.phase == "running"
            assert store.get(rt.instance_id).phase == "running"
            inst = await engine.stop(rt.instance_id, wait=True)
            assert (inst.status, inst.phase) == (InstanceStatus.STOPPED, "idle")
            assert store.get(rt.instance_id).phase == "idle"

    async def test_a_backoff_is_a_phase_the_view_and_the_status_line_show(self, store: Store) -> None:
        """Waiting out a backoff is phase backoff on disk and in the API view; the status line counts it."""
        restart = fast_restart(initial_delay=5, max_delay=10)
        rt = make_runtime(store, "backing", faulty("--crash-on-start", "2"), restart=restart)
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.phase == "backoff")
            assert inst.status is InstanceStatus.STOPPED and inst.status_detail == "backoff 5.0s"
            assert store.get(rt.instance_id).phase == "backoff"
            assert instance_view(inst, decl=None, drift=False).phase == "backoff"
            assert status_summary(engine.instances()) == "0 running, 1 backoff, 0 error"

    async def test_a_crash_loop_without_cooldown_is_held(self, store: Store, tmp_path: Path) -> None:
        """Giving up waits for an operator in phase held; a start releases it and it runs again."""
        marker = tmp_path / "broken"
        marker.write_text("")
        rt = make_runtime(
            store,
            "held",
            faulty("--crash-if-exists", str(marker)),
            ready=Probe(kind=ProbeKind.PROCESS, seconds=0.2),
            restart=fast_restart(max_retries=1, cooldown=0),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.ERROR)
            assert inst.phase == "held" and store.get(rt.instance_id).phase == "held"
            marker.unlink()
            inst = await engine.start(rt.instance_id, wait=True)
            assert (inst.status, inst.phase) == (InstanceStatus.RUNNING, "running")

    async def test_a_cooldown_is_a_phase(self, store: Store, tmp_path: Path) -> None:
        """Past max_retries with a cooldown the instance waits in phase cooldown, in error."""
        marker = tmp_path / "broken"
        marker.write_text("")
        rt = make_runtime(
            store,
            "cooling",
            faulty("--crash-if-exists", str(marker)),
            ready=Probe(kind=ProbeKind.PROCESS, seconds=0.2),
            restart=fast_restart(max_retries=1, cooldown=30),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.ERROR)
            assert inst.phase == "cooldown" and inst.next_start_at is not None

    async def test_shutdown_records_the_actor_closed(self, store: Store) -> None:
        """After a shutdown the record says stopped, phase closed."""
        rt = make_runtime(store, "closing", faulty())
        async with running_engine(store) as engine:
            await engine.add(rt)
            await engine.start(rt.instance_id, wait=True)
        on_disk = store.get(rt.instance_id)
        assert (on_disk.status, on_disk.phase) == (InstanceStatus.STOPPED, "closed")
