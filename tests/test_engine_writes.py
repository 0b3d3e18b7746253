"""Where the engine's blocking calls run and how its state writes land: on the loop when alone, in worker
threads in a crowd or behind another writer's lock, never fsynced; and how a recorded command line is
recognised when its program is a script."""

from __future__ import annotations

import contextlib
import json
import os

import anyio
import pytest

from supervisor._fs import locked
from supervisor.engine.actor import Crowd
from supervisor.engine.recovery import same_program as _same_program
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import INSTANCE_FILE, Store
from supervisor.testing import make_runtime, running_engine, wait_for, wait_instance

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


class TestCrowd:
    def test_lone_calls_stay_on_the_loop_and_a_crowd_goes_to_threads(self) -> None:
        """Up to ``size`` calls within ``window`` are lone; more are a crowd; a quiet window resets it."""
        crowd = Crowd(size=2, window=0.01)
        assert [crowd.crowded(t) for t in (0.0, 0.001, 0.002, 0.003)] == [False, False, True, True]
        assert crowd.crowded(1.0) is False

    def test_a_respawn_is_two_lone_writes(self) -> None:
        """The engine's write gate lets the two writes of one respawn, 3 ms apart, both run on the loop."""
        crowd = Crowd(size=4, window=0.01)
        assert not crowd.crowded(5.0) and not crowd.crowded(5.003)


class TestSameProgram:
    def test_the_recorded_argv_itself_matches(self) -> None:
        """The common case: the running command line is the argv that was spawned."""
        assert _same_program(["agent", "--port", "1"], ["agent", "--port", "1"])

    def test_a_script_behind_its_interpreter_matches(self) -> None:
        """``#!`` and ``env`` put the interpreter first; the script's name and all arguments still match."""
        recorded = ["hermes", "serve", "--port", "9"]
        assert _same_program(["/venv/bin/python3", "/venv/bin/hermes", "serve", "--port", "9"], recorded)
        assert _same_program(["node", "/usr/local/bin/hermes", "serve", "--port", "9"], recorded)

    def test_other_programs_or_arguments_do_not_match(self) -> None:
        """A different program, different arguments, or a bare interpreter are not the recorded process."""
        recorded = ["hermes", "serve", "--port", "9"]
        assert not _same_program(["/usr/bin/python3", "/srv/other", "serve", "--port", "9"], recorded)
        assert not _same_program(["/venv/bin/python3", "/venv/bin/hermes", "serve", "--port", "8"], recorded)
        assert not _same_program(["python3"], ["python3", "-m", "x"])
        assert not _same_program([], recorded) and not _same_program(["x"], [])


class TestStateWrites:
    async def test_a_write_behind_another_writers_lock_waits_off_the_loop(self, store: Store) -> None:
        """While another writer holds the instance's lock, the engine's write waits in a worker thread (the
        loop keeps running), then lands once the lock is free."""
        rt = make_runtime(store, "locked-out", ["sleep", "30"])
        path = store.dir(rt.instance_id) / INSTANCE_FILE
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING)
            await wait_for(lambda: json.loads(path.read_text())["status"] == "running")
            with contextlib.ExitStack() as held:
                held.enter_context(locked(store.dir(rt.instance_id) / ".lock"))
                async with anyio.create_task_group() as tg:
                    tg.start_soon(engine.stop, rt.instance_id)
                    began = anyio.current_time()
                    await anyio.sleep(0.2)
                    assert anyio.current_time() - began < 1.0  # the loop kept running meanwhile
                    assert json.loads(path.read_text())["status"] == "running"
                    held.close()  # the other writer is done: the engine's write goes through
            await wait_for(lambda: json.loads(path.read_text())["status"] == "stopped")

    async def test_runtime_state_is_written_without_fsync(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Starting and stopping an instance writes instance.json each time but never calls fsync."""
        rt = make_runtime(store, "unsynced", ["sleep", "30"])
        synced: list[int] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING)
            await engine.stop(rt.instance_id, wait=True)
        assert store.get(rt.instance_id).status is InstanceStatus.STOPPED
        assert synced == []
