"""Adopting a fleet of 50 at once: a repeated adoption writes no ``instance.json`` while a later real change
is still written, and impostors among the 50 (a pid now held by a stranger) are never adopted."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import psutil
import pytest

from supervisor.engine import Engine, InstanceRuntime, procfs, spawn
from supervisor.engine.events import Event
from supervisor.models import Instance, InstanceStatus
from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry
from supervisor.store import INSTANCE_FILE, Store
from supervisor.testing import make_runtime, reap, running_engine, wait_for

pytestmark = pytest.mark.anyio

FLEET = 50
SLEEP = shutil.which("sleep") or "/bin/sleep"


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


@pytest.fixture
def fleet(store: Store) -> Iterator[list[InstanceRuntime]]:
    """50 ``sleep`` instances; whatever process a record names when the test ends is killed and reaped."""
    runtimes = [make_runtime(store, f"agent-{n:02d}", [SLEEP, "300"]) for n in range(FLEET)]
    try:
        yield runtimes
    finally:
        for rt in runtimes:
            with contextlib.suppress(Exception):
                pid = store.get(rt.instance_id).pid
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    reap(pid)


@contextlib.asynccontextmanager
async def detaching_engine(store: Store, events: list[Event] | None = None) -> AsyncIterator[Engine]:
    """An engine that is dropped at the end without stopping anything (a daemon killed)."""
    claims = ClaimRegistry(store.root.parent / "port-claims")
    engine = Engine(store, claims=claims, on_event=None if events is None else events.append)
    async with anyio.create_task_group() as tg:
        await tg.start(engine.run)
        try:
            yield engine
        finally:
            await engine.detach()


async def started(store: Store, runtimes: list[InstanceRuntime]) -> dict[str, int]:
    """Start every instance under one engine, then drop it: instance id → pid."""
    pids: dict[str, int] = {}
    async with detaching_engine(store) as engine:
        for rt in runtimes:
            await engine.add(rt)
            inst = await engine.start(rt.instance_id, wait=True)
            assert inst.status is InstanceStatus.RUNNING and inst.pid is not None
            pids[rt.instance_id] = inst.pid
    return pids


async def adopted(engine: Engine, events: list[Event], pids: dict[str, int]) -> None:
    """Wait until every one of ``pids`` was announced adopted with its pid (its adoption is over)."""

    def done() -> bool:
        said = {e.instance_id: e.detail for e in events if e.event == "transition"}
        return all(said.get(key) == f"adopted pid {pid}" for key, pid in pids.items())

    await wait_for(done, 20, what="every instance announced adopted")
    assert {key: engine.get(key).pid for key in pids} == pids


def files(store: Store, runtimes: list[InstanceRuntime]) -> dict[str, tuple[int, int]]:
    """Each ``instance.json``'s inode and modification time: a replaced or rewritten file changes them."""
    found = {}
    for rt in runtimes:
        st = (store.dir(rt.instance_id) / INSTANCE_FILE).stat()
        found[rt.instance_id] = (st.st_ino, st.st_mtime_ns)
    return found


def execed(pid: int) -> bool:
    return procfs.read_cmdline(pid)[:1] == [SLEEP]


def running_anew(engine: Engine, instance_id: str, stranger: int) -> bool:
    inst = engine.get(instance_id)
    return inst.status is InstanceStatus.RUNNING and inst.pid not in (None, stranger)


class TestRepeatedAdoption:
    async def test_a_repeated_adoption_of_fifty_writes_nothing_and_a_later_change_is_written(
        self, store: Store, fleet: list[InstanceRuntime]
    ) -> None:
        """The first adoption records "adopted pid N"; the next one finds every record as memory holds it and
        writes none of the 50 files; a stop afterwards is written as before, and only for that instance."""
        pids = await started(store, fleet)
        first: list[Event] = []
        async with detaching_engine(store, first) as engine:
            for rt in fleet:
                await engine.add(rt)
            await adopted(engine, first, pids)
        await wait_for(
            lambda: all(store.get(k).status_detail == f"adopted pid {p}" for k, p in pids.items()),
            10,
            what="the first adoption on disk",
        )
        before = files(store, fleet)
        again: list[Event] = []
        async with running_engine(store, on_event=again.append) as engine:
            for rt in fleet:
                await engine.add(rt)
            await adopted(engine, again, pids)
            await engine.settled()
            assert files(store, fleet) == before
            victim = fleet[0].instance_id
            await engine.stop(victim, wait=True)
            on_disk = store.get(victim)
            assert (on_disk.status, on_disk.desired, on_disk.pid) == (InstanceStatus.STOPPED, "stopped", None)
            after = files(store, fleet)
            assert after[victim] != before[victim]
            assert {k: v for k, v in after.items() if k != victim} == {
                k: v for k, v in before.items() if k != victim
            }
            others = [store.get(rt.instance_id) for rt in fleet[1:]]
            assert all(i.status is InstanceStatus.RUNNING and i.pid == pids[i.id] for i in others)


class TestImpostors:
    async def test_strangers_holding_recorded_pids_are_refused_and_the_rest_adopted(
        self, store: Store, fleet: list[InstanceRuntime], tmp_path: Path
    ) -> None:
        """Two of the 50 recorded processes died and their pids now name strangers (as a reused pid would),
        with the recorded start time: one carries the same id from another home's copy, one no marker and
        another command line. Neither is adopted nor signalled; both instances run anew; 48 are adopted."""
        pids = await started(store, fleet)
        copied, unmarked = fleet[7], fleet[31]
        base = {k: v for k, v in os.environ.items() if k not in (procfs.MARKER_VAR, procfs.HOME_VAR)}
        env_copy = {**base, procfs.MARKER_VAR: copied.instance_id, procfs.HOME_VAR: str(tmp_path / "copy")}
        log = tmp_path / "strangers.log"
        strangers = [
            spawn([SLEEP, "300"], env=env_copy, cwd=tmp_path, log_path=log),
            spawn([SLEEP, "301"], env=base, cwd=tmp_path, log_path=log),
        ]
        try:
            for rt, stranger in zip((copied, unmarked), strangers, strict=True):
                os.kill(pids[rt.instance_id], signal.SIGKILL)
                await wait_for(functools.partial(reap, pids[rt.instance_id]), 5, what="the recorded one gone")
                await wait_for(functools.partial(execed, stranger.pid), 5, what="the stranger's exec")
                born = psutil.Process(stranger.pid).create_time()

                def take(inst: Instance, pid: int = stranger.pid, at: float = born) -> None:
                    inst.pid, inst.proc_start_time = pid, at

                store.update(rt.instance_id, take)
            kept = {k: p for k, p in pids.items() if k not in (copied.instance_id, unmarked.instance_id)}
            events: list[Event] = []
            async with running_engine(store, on_event=events.append) as engine:
                for rt in fleet:
                    await engine.add(rt)
                await adopted(engine, events, kept)
                for rt, stranger in zip((copied, unmarked), strangers, strict=True):
                    anew = functools.partial(running_anew, engine, rt.instance_id, stranger.pid)
                    await wait_for(anew, 20, what="the instance running anew")
                    assert not engine.get(rt.instance_id).status_detail.startswith("adopted")
                assert [s.alive() for s in strangers] == [True, True]
        finally:
            for stranger in strangers:
                stranger.send_signal(signal.SIGKILL)
                await stranger.wait()
