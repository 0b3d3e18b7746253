"""Stopping an instance's whole process tree, including descendants that escaped its process group.

The stop signal goes to every member (group, descendants, and anything carrying the instance's
``EYRIE_INSTANCE_ID``); after ``stop_timeout`` whatever is left gets SIGKILL. The stop is done only when a
fresh look at ``/proc`` finds nothing of the tree and the port is free. Many instances stopping at once share
their ``/proc`` scans through one `ProcScanner`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio

from supervisor.engine import pidfd, procfs
from supervisor.engine.process import ProcessHandle, SpawnedProcess
from supervisor.ports import port_holder, port_in_use

__all__ = ["ProcScanner", "StopResult", "stop_tree"]

_KILL_WAIT = 5.0
_PORT_WAIT = 5.0
_PORT_POLL = 0.02
_KILL_ROUNDS = 5


class ProcScanner:
    """Reads the process table for many callers at once: each gets a table read after it asked.

    One caller of a scan runs it (after the scan in progress, if any); the others wait for its table, all
    woken together when it is read. Handing a lock from one waiter to the next would wake them one turn of
    the event loop after another: a fleet of 1,000 starting took seconds to pass its first sweep that way.
    """

    def __init__(self, limiter: anyio.CapacityLimiter | None = None) -> None:
        self._lock = anyio.Lock()
        self._waiting: _Scan | None = None
        self.limiter = limiter
        self.scans = 0

    async def table(self) -> dict[int, procfs.ProcInfo]:
        scan = self._waiting
        if scan is None:
            scan = self._waiting = _Scan()
        while scan.result is None:
            if scan.running:
                await scan.read.wait()  # set when the table is read, or when its reader failed
                continue
            scan.running = True  # this caller reads it; a failure leaves it to the next waiter
            read = scan.read
            try:
                async with self._lock:
                    if self._waiting is scan:
                        self._waiting = None
                    scan.result = await anyio.to_thread.run_sync(procfs.scan, limiter=self.limiter)
                    self.scans += 1
            finally:
                scan.running = False
                if scan.result is None:
                    scan.read = anyio.Event()
                read.set()
        return scan.result


class _Scan:
    __slots__ = ("read", "result", "running")

    def __init__(self) -> None:
        self.result: dict[int, procfs.ProcInfo] | None = None
        self.running = False
        self.read = anyio.Event()


@dataclass(slots=True, eq=False)
class StopResult:
    """What a stop took."""

    signalled: int  # processes that got the stop signal
    killed: int  # processes that needed SIGKILL
    port_free: bool
    seconds: float
    detail: str = ""


class _Pidfds:
    """Pidfds for a set of processes, each verified to be the process the table saw."""

    def __init__(self) -> None:
        self.fds: dict[int, int] = {}

    def add(self, table: dict[int, procfs.ProcInfo], pids: Iterable[int]) -> None:
        for pid in pids:
            if pid in self.fds:
                continue
            opened = pidfd.open_verified(pid, table[pid].start_ticks)
            if opened is not None:
                self.fds[pid] = opened[0]

    def signal(self, sig: signal.Signals, skip: set[int] | frozenset[int] = frozenset()) -> None:
        for pid, fd in self.fds.items():
            if pid not in skip:
                pidfd.send_signal(fd, sig)

    def alive(self) -> list[int]:
        return [pid for pid, fd in self.fds.items() if not pidfd.ended(fd)]

    async def wait(self) -> None:
        async def ended(fd: int) -> None:
            await anyio.wait_readable(fd)

        async with anyio.create_task_group() as tg:
            for fd in self.fds.values():
                if not pidfd.ended(fd):
                    tg.start_soon(ended, fd)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _group_is_ours(
    table: dict[int, procfs.ProcInfo], pgid: int | None, marker: str, main: ProcessHandle | None
) -> bool:
    if not pgid:
        return False
    if isinstance(table, procfs.ProcTable):
        rows: Iterable[procfs.ProcInfo] = (table[pid] for pid in table.index().by_pgid.get(pgid, ()))
    else:
        rows = table.values()
    return any(
        info.pgid == pgid and (info.marker == marker or (main is not None and info.pid == main.pid))
        for info in rows
        if not info.gone
    )


def _leads_own_group(main: ProcessHandle | None, pgid: int | None) -> bool:
    """Whether ``main`` is our own child, not reaped yet, leading group ``pgid``: then no other process can
    have that group id (a group's id is its leader's pid, which stays ours until we reap it), so the group
    may be signalled before any look at ``/proc``."""
    return isinstance(main, SpawnedProcess) and main.exit_status is None and main.pid == main.pgid == pgid


def _signal_group(pgid: int, stop_signal: signal.Signals) -> None:
    for sig in (stop_signal, signal.SIGCONT):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        if stop_signal == signal.SIGKILL:
            break


async def stop_tree(
    *,
    marker: str,
    main: ProcessHandle | None,
    pgid: int | None,
    stop_signal: signal.Signals,
    stop_timeout: float,
    port: int | None,
    scanner: ProcScanner,
    started_before: int | None = None,
    before_signal: Callable[[], Awaitable[None]] | None = None,
) -> StopResult:
    """Stop everything that belongs to instance ``marker``; reap ``main`` when it is our child.

    ``started_before`` (clock ticks since boot) limits the stop to leftovers of an earlier run.
    ``before_signal`` is awaited before the first signal: for our own child leading its group, before the
    scan (the group is signalled at once); otherwise between reading the process table and the signals (a
    write that must come first overlaps the scan, which many stops share).
    """
    began = time.monotonic()
    fds = _Pidfds()
    signalled = killed = 0
    early = started_before is None and bool(pgid) and _leads_own_group(main, pgid)
    try:
        if early and pgid:
            # the stop signal reaches the group at once, without waiting for the /proc scan, which then
            # finds what left the group
            if before_signal is not None:
                await before_signal()
                before_signal = None
            _signal_group(pgid, stop_signal)
        table = await scanner.table()
        main_id = (main.pid, main.start_ticks) if main is not None and main.alive() else None

        def members(t: dict[int, procfs.ProcInfo]) -> set[int]:
            return procfs.tree_members(
                t, marker=marker, main=main_id, pgid=pgid, started_before=started_before
            )

        found = members(table)
        if not found and (main is None or not main.alive()):
            return await _finish(port, began, int(early), 0, main)
        fds.add(table, found)
        if before_signal is not None:
            await before_signal()
        signalled = max(len(fds.fds), int(early))
        group = early or (_group_is_ours(table, pgid, marker, main) and started_before is None)
        # each process gets the stop signal exactly once (a second SIGTERM means "now!" to many programs):
        # the group through killpg, which also reaches members forked meanwhile; the rest one by one
        in_group = frozenset(pid for pid in fds.fds if table[pid].pgid == pgid) if group else frozenset()
        for sig in (stop_signal, signal.SIGCONT):
            fds.signal(sig, skip=in_group)
            if group and pgid and not early:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
            if stop_signal == signal.SIGKILL:
                break
        with anyio.move_on_after(stop_timeout):
            await fds.wait()
            if main is not None:
                await main.wait()

        for _ in range(_KILL_ROUNDS):
            table = await scanner.table()
            left = members(table) | set(fds.alive())
            if main is not None and main.alive():
                left.add(main.pid)
            if not left:
                break
            fds.add(table, left)
            killed += len(left)
            if group and pgid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
            if main is not None:
                main.send_signal(signal.SIGKILL)
            fds.signal(signal.SIGKILL)
            with anyio.move_on_after(_KILL_WAIT):
                await fds.wait()
        if main is not None:
            with anyio.move_on_after(_KILL_WAIT):
                await main.wait()
    finally:
        fds.close()
    return await _finish(port, began, signalled, killed, main)


async def _finish(
    port: int | None, began: float, signalled: int, killed: int, main: ProcessHandle | None
) -> StopResult:
    """Reap ``main`` if it already ended, and wait (bounded) for the port to be free."""
    if main is not None and not main.alive():
        await main.wait()
    port_free, detail = True, ""
    if port:
        for _ in range(round(_PORT_WAIT / _PORT_POLL)):
            if not port_in_use(port):
                break
            await anyio.sleep(_PORT_POLL)
        if port_in_use(port):
            port_free = False
            holder = await anyio.to_thread.run_sync(port_holder, port)
            detail = f"port {port} is still held by {holder or 'an unknown process'}"
    return StopResult(signalled, killed, port_free, time.monotonic() - began, detail)
