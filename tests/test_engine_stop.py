"""stop_tree on real process trees, and the shared /proc scans behind it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from supervisor.engine import ExitStatus, ProcScanner, SpawnedProcess, procfs, spawn, stop_tree
from supervisor.ports import port_in_use
from supervisor.testing import faulty, free_port, process_gone, wait_for

pytestmark = pytest.mark.anyio

MARKER = f"stop-test-instance-{os.getpid()}"
"""One per test process: another checkout's suite running beside this one marks its processes apart."""


async def start(tmp_path: Path, *flags: str, marker: str = MARKER) -> SpawnedProcess:
    """Spawn the fault program and wait until it has its signal handlers in place."""
    env = {**os.environ, procfs.MARKER_VAR: marker}
    log = tmp_path / f"{marker}.log"
    before = log.stat().st_size if log.exists() else 0
    proc = spawn(faulty(*flags), env=env, cwd=tmp_path, log_path=log)
    await wait_for(lambda: f"faulty {proc.pid} starting" in log.read_text()[before:])
    return proc


class TestStopTree:
    async def test_polite_child_ends_on_the_stop_signal(self, tmp_path: Path) -> None:
        """A child honouring SIGTERM is reaped with its exit status; nothing needed SIGKILL."""
        proc = await start(tmp_path)
        result = await stop_tree(
            marker=MARKER,
            main=proc,
            pgid=proc.pgid,
            stop_signal=signal.SIGTERM,
            stop_timeout=5,
            port=None,
            scanner=ProcScanner(),
        )
        assert result.killed == 0 and result.signalled == 1 and result.port_free
        assert proc.exit_status is not None and proc.exit_status.code == 0

    async def test_each_process_gets_the_stop_signal_once(self, tmp_path: Path) -> None:
        """The group is signalled once: a child lingering after SIGTERM sees exactly one SIGTERM."""
        proc = await start(tmp_path, "--linger-on-term", "0.3")
        result = await stop_tree(
            marker=MARKER,
            main=proc,
            pgid=proc.pgid,
            stop_signal=signal.SIGTERM,
            stop_timeout=5,
            port=None,
            scanner=ProcScanner(),
        )
        assert result.killed == 0 and proc.exit_status == ExitStatus(code=0)
        assert (tmp_path / f"{MARKER}.log").read_text().count("got SIGTERM") == 1

    async def test_sigterm_ignorer_and_escaped_grandchild_are_killed_and_port_freed(
        self, tmp_path: Path
    ) -> None:
        """After stop_timeout the child and a grandchild in its own session get SIGKILL; the port is free."""
        port = free_port()
        grandchild_file = tmp_path / "grandchild.pid"
        proc = await start(
            tmp_path, "--tcp", "--port", str(port), "--ignore-sigterm", "--grandchild", str(grandchild_file)
        )
        await wait_for(lambda: port_in_use(port) and grandchild_file.exists())
        grandchild = int(grandchild_file.read_text())
        assert os.getsid(grandchild) != proc.pgid
        began = time.monotonic()
        result = await stop_tree(
            marker=MARKER,
            main=proc,
            pgid=proc.pgid,
            stop_signal=signal.SIGTERM,
            stop_timeout=0.3,
            port=port,
            scanner=ProcScanner(),
        )
        assert time.monotonic() - began >= 0.3
        assert result.killed == 2 and result.port_free and result.detail == ""
        assert process_gone(proc.pid) and process_gone(grandchild)
        assert proc.exit_status is not None and proc.exit_status.signal == signal.SIGKILL

    async def test_sweep_spares_processes_started_after_the_cutoff(self, tmp_path: Path) -> None:
        """With started_before only older processes with the marker are ended (a past run's leftovers)."""
        old = await start(tmp_path)
        await wait_for(lambda: procfs.age(old.start_ticks) > 0.05)
        cutoff = procfs.uptime_ticks()
        await wait_for(lambda: procfs.uptime_ticks() > cutoff + 1)
        new = await start(tmp_path)
        try:
            result = await stop_tree(
                marker=MARKER,
                main=None,
                pgid=None,
                stop_signal=signal.SIGTERM,
                stop_timeout=2,
                port=None,
                scanner=ProcScanner(),
                started_before=cutoff,
            )
            assert result.signalled == 1
            assert (await old.wait()).code == 0
            assert new.alive()
        finally:
            new.send_signal(signal.SIGKILL)
            await new.wait()

    async def test_other_instances_are_untouched(self, tmp_path: Path) -> None:
        """Only processes of this instance are stopped, never one carrying another instance's marker."""
        mine = await start(tmp_path)
        theirs = await start(tmp_path, marker="another-instance")
        try:
            await stop_tree(
                marker=MARKER,
                main=mine,
                pgid=mine.pgid,
                stop_signal=signal.SIGTERM,
                stop_timeout=2,
                port=None,
                scanner=ProcScanner(),
            )
            assert theirs.alive() and not mine.alive()
        finally:
            theirs.send_signal(signal.SIGKILL)
            await theirs.wait()


class TestProcScanner:
    async def test_concurrent_callers_share_scans(self) -> None:
        """Fifty callers asking at once are served by at most two scans, each read after they asked."""
        scanner = ProcScanner()
        tables: list[dict[int, procfs.ProcInfo]] = []

        async def ask() -> None:
            tables.append(await scanner.table())

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(ask)
        assert len(tables) == 50 and scanner.scans <= 2
        assert all(os.getpid() in t for t in tables)

    async def test_waiters_of_one_scan_are_woken_together(self) -> None:
        """Callers sharing a scan all have its table within a turn or two of the event loop once it is read,
        not one turn after another (a fleet starting has hundreds of them)."""
        scanner = ProcScanner()
        turns = 0
        done_at: list[int] = []

        async def ask() -> None:
            await scanner.table()
            done_at.append(turns)

        async def count_turns() -> None:
            nonlocal turns
            while len(done_at) < 200:
                turns += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(count_turns)
            for _ in range(200):
                tg.start_soon(ask)
        assert len(done_at) == 200 and scanner.scans == 1
        assert max(done_at) - min(done_at) <= 2

    async def test_a_cancelled_reader_leaves_the_scan_to_a_waiter(self) -> None:
        """The caller reading a shared scan is cancelled before it begins: another waiter reads it, and every
        other caller gets a table."""
        scanner = ProcScanner()
        tables: list[dict[int, procfs.ProcInfo]] = []

        async def ask() -> None:
            tables.append(await scanner.table())

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as first:
                first.cancel()
                await scanner.table()  # cancelled at its first checkpoint, the scan not begun
            for _ in range(10):
                tg.start_soon(ask)
        assert len(tables) == 10 and all(os.getpid() in t for t in tables)

    async def test_table_sees_markers_groups_and_parents(self, tmp_path: Path) -> None:
        """The table has each process's parent, group, start time and instance marker."""
        proc = await start(tmp_path)
        try:
            table = await ProcScanner().table()
            row = table[proc.pid]
            assert (row.ppid, row.pgid, row.marker, row.start_ticks) == (
                os.getpid(),
                proc.pid,
                MARKER,
                proc.start_ticks,
            )
            assert procfs.tree_members(table, marker=MARKER) == {proc.pid}
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


class TestTreeMembers:
    def test_indexed_table_finds_what_a_plain_table_finds(self) -> None:
        """A scanned table answers through its index exactly as a plain dict of the same rows does."""
        info = procfs.ProcInfo
        rows = {
            10: info(10, 1, 10, "S", 100, "a"),  # instance a's main process
            11: info(11, 10, 10, "S", 101),  # its child, no marker
            12: info(12, 11, 12, "S", 102),  # escaped into its own group
            13: info(13, 1, 10, "S", 103),  # same group as a's main, reparented
            20: info(20, 1, 20, "S", 200, "b"),  # another instance
            21: info(21, 20, 20, "Z", 201, "b"),  # a zombie of b: gone
            30: info(30, 1, 30, "S", 300),  # a stranger
        }
        plain, indexed = dict(rows), procfs.ProcTable(rows)
        cases: list[dict[str, Any]] = [
            {"marker": "a"},
            {"marker": "a", "pgid": 10},
            {"marker": "b", "pgid": 20},
            {"marker": "c", "main": (30, 300)},
            {"marker": "c", "main": (30, 299)},
            {"marker": "a", "pgid": 10, "started_before": 101},
        ]
        for kwargs in cases:
            assert procfs.tree_members(indexed, **kwargs) == procfs.tree_members(plain, **kwargs), kwargs
        assert procfs.tree_members(indexed, marker="a", pgid=10) == {10, 11, 12, 13}
        assert procfs.tree_members(indexed, marker="b", pgid=20) == {20}
