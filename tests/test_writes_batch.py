"""State writes that come in a crowd go to worker threads together (`WriteBatch`), and a fleet stop still has
every instance's desired state on disk before its signal, now that the group is signalled before the /proc
scan."""

from __future__ import annotations

import functools
import json
import sys
import threading
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from supervisor.engine._write_batch import WriteBatch
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import free_port, make_instance, make_runtime, process_gone, running_engine, wait_for

pytestmark = pytest.mark.anyio

FLEET = 12

# On SIGTERM, the child writes the desired state its instance.json holds at that moment, then exits.
_REPORTER = """
import glob, json, os, signal, sys, time
path = sys.argv[2]
def journaled():
    me = os.path.basename(os.path.dirname(path))
    for journal in glob.glob(os.path.join(os.path.dirname(os.path.dirname(path)), ".stopping-*.json")):
        with open(journal) as f:
            if me in json.load(f)["ids"]:
                return True
    return False
def on_term(signum, frame):
    with open(path) as f:
        desired = json.load(f).get("desired", "")
    if desired != "stopped" and journaled():
        desired = "stopped"
    with open(sys.argv[1], "a") as out:
        out.write(desired + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


class TestWriteBatch:
    async def test_callers_of_one_turn_share_one_batch_in_their_own_order(self) -> None:
        """Jobs asked for in the same turn of the loop run in one batch; each caller gets its own result."""
        batch: WriteBatch[int] = WriteBatch(anyio.CapacityLimiter(4))
        results: dict[int, int] = {}

        async def ask(i: int) -> None:
            results[i] = await batch.run(lambda: i * 10)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(ask, i)
        assert results == {i: i * 10 for i in range(20)}
        assert batch.batches == 1

    async def test_an_error_goes_to_its_own_caller_only(self) -> None:
        """A job that raises fails its caller; the others in the batch still get their results."""
        batch: WriteBatch[int] = WriteBatch(anyio.CapacityLimiter(4))

        def bad() -> int:
            raise OSError("disk full")

        outcomes: dict[str, object] = {}

        async def ask(key: str, job: object) -> None:
            try:
                outcomes[key] = await batch.run(job)  # type: ignore[arg-type]
            except OSError as exc:
                outcomes[key] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "good", lambda: 1)
            tg.start_soon(ask, "bad", bad)
            tg.start_soon(ask, "also good", lambda: 2)
        assert outcomes["good"] == 1 and outcomes["also good"] == 2
        assert isinstance(outcomes["bad"], OSError)

    async def test_callers_that_come_while_a_batch_runs_get_the_next_one(self) -> None:
        """A job asked for while a batch is being written waits for the next batch, and is run in it."""
        batch: WriteBatch[str] = WriteBatch(anyio.CapacityLimiter(4))
        release = threading.Event()
        started = threading.Event()

        def slow() -> str:
            started.set()
            release.wait(10)
            return "first"

        results: list[str] = []

        async def ask(job: object) -> None:
            results.append(await batch.run(job))  # type: ignore[arg-type]

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, slow)
            await anyio.to_thread.run_sync(started.wait, 10)
            for i in range(3):
                tg.start_soon(ask, functools.partial(str, i))
            await anyio.lowlevel.checkpoint()
            release.set()
        assert sorted(results) == ["0", "1", "2", "first"]
        assert batch.batches == 2

    async def test_a_cancelled_caller_still_has_its_job_run(self) -> None:
        """Once asked for, a job runs to its end, as a blocking call in a thread does."""
        batch: WriteBatch[None] = WriteBatch(anyio.CapacityLimiter(4))
        ran = threading.Event()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await batch.run(ran.set)
        assert ran.is_set()


class TestFleetStop:
    async def test_desired_state_is_on_disk_before_each_signal(self, home: Home, tmp_path: Path) -> None:
        """Many stops begun together: every child, on its SIGTERM, already reads ``desired: stopped`` in its
        instance.json or in a stop journal naming it; the records went to disk in fewer batches than
        instances."""
        store = Store(home)
        reports = tmp_path / "desired-at-signal"
        runtimes = []
        for i in range(FLEET):
            inst = make_instance(store, f"stopper-{i}", port=free_port())
            argv = [sys.executable, "-c", _REPORTER, str(reports), str(store.dir(inst.id) / "instance.json")]
            runtimes.append(make_runtime(store, inst, argv))
        async with running_engine(store) as engine:
            for rt in runtimes:
                await engine.add(rt)
            async with anyio.create_task_group() as tg:
                for rt in runtimes:
                    tg.start_soon(functools.partial(engine.start, rt.instance_id, wait=True))
            await wait_for(
                lambda: all(engine.get(rt.instance_id).status is InstanceStatus.RUNNING for rt in runtimes)
            )
            await wait_for(lambda: all(_ready(rt.log_path) for rt in runtimes), what="every child ready")
            pids = [engine.get(rt.instance_id).pid or 0 for rt in runtimes]
            services = engine._services
            assert services is not None
            batches = services.batch.batches
            async with anyio.create_task_group() as tg:
                for rt in runtimes:
                    tg.start_soon(functools.partial(engine.stop, rt.instance_id, wait=True))
            assert services.batch.batches - batches < FLEET
            assert all(process_gone(pid) for pid in pids)
        assert reports.read_text().split() == ["stopped"] * FLEET
        for rt in runtimes:
            on_disk = json.loads((store.dir(rt.instance_id) / "instance.json").read_text())
            assert on_disk["desired"] == "stopped" and on_disk["status"] == "stopped"


def _ready(log: Path) -> bool:
    try:
        return "ready" in log.read_text()
    except FileNotFoundError:
        return False
