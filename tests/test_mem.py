"""What keeps the daemon's memory per instance small: shared records and probes, and locks and events that
hold a waiter queue only while somebody waits; each still behaves as the thing it replaces."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from supervisor.engine._sparse import SparseEvent, SparseLock
from supervisor.frameworks.expand import PlaceholderValues, expand_probe
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import InstanceStatus
from supervisor.store import Store
from supervisor.testing import make_instance

VALUES = PlaceholderValues(port=43007, config="c", instance_dir="d", workspace="w", name="n", id="i")


class TestStoreKeepsTheWrittenRecord:
    def test_a_kept_record_is_handed_out_as_copies(self, tmp_path: Path) -> None:
        """The record a writer keeps is the store's parse: readers get copies of it, never the record."""
        store = Store(tmp_path)
        inst = make_instance(store, "alpha")
        kept = store.update(inst.id, lambda i: setattr(i, "pid", 4242), durable=False, keep=True)
        read = store.get(inst.id)
        assert read is not kept and read == kept and read.pid == 4242
        read.pid = 1
        assert store.get(inst.id).pid == 4242 and kept.pid == 4242

    def test_a_change_by_another_writer_is_read_anew(self, tmp_path: Path) -> None:
        """A file another process rewrote after the kept write is parsed again, not answered from memory."""
        store = Store(tmp_path)
        inst = make_instance(store, "alpha")
        store.update(inst.id, lambda i: setattr(i, "pid", 4242), durable=False, keep=True)
        Store(tmp_path).update_status(inst.id, InstanceStatus.STOPPED)
        assert store.get(inst.id).status is InstanceStatus.STOPPED
        assert store.get_by_name("alpha").status is InstanceStatus.STOPPED


class TestSharedProbes:
    def test_a_probe_without_placeholders_is_shared(self) -> None:
        """A frozen probe with nothing to expand is the same object for every instance."""
        probe = Probe(kind=ProbeKind.PROCESS, seconds=0)
        assert expand_probe(probe, VALUES) is probe

    def test_a_probe_with_placeholders_is_expanded(self) -> None:
        probe = Probe(kind=ProbeKind.EXEC, command=["check", "{port}"])
        out = expand_probe(probe, VALUES)
        assert out is not probe and out.command == ["check", "43007"] and probe.command == ["check", "{port}"]


class TestSparseLock:
    @pytest.mark.anyio
    async def test_excludes_and_lets_go(self) -> None:
        """Two holders never overlap; once nobody holds or waits, the real lock is gone."""
        lock = SparseLock()
        inside: list[int] = []
        overlaps: list[int] = []

        async def hold(n: int) -> None:
            async with lock:
                if inside:
                    overlaps.append(n)
                inside.append(n)
                await anyio.sleep(0.01)
                inside.remove(n)

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(hold, n)
        assert overlaps == []
        assert lock._lock is None

    @pytest.mark.anyio
    async def test_a_cancelled_waiter_leaves_no_trace(self) -> None:
        lock = SparseLock()
        release = anyio.Event()

        async def holder() -> None:
            async with lock:
                await release.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await anyio.wait_all_tasks_blocked()
            with anyio.move_on_after(0.01):
                async with lock:
                    pytest.fail("acquired a held lock")
            release.set()
        assert lock._lock is None
        with anyio.fail_after(5):
            async with lock:
                pass


class TestSparseEvent:
    @pytest.mark.anyio
    async def test_set_before_and_after_wait(self) -> None:
        """A set before the wait is remembered; a set during it wakes every waiter."""
        early = SparseEvent()
        early.set()
        with anyio.fail_after(5):
            await early.wait()
        event = SparseEvent()
        woken: list[int] = []

        async def waiter(n: int) -> None:
            await event.wait()
            woken.append(n)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(waiter, n)
                await anyio.wait_all_tasks_blocked()
                assert not event.is_set() and woken == []
                event.set()
        assert sorted(woken) == [0, 1, 2] and event.is_set()
