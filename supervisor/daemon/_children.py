"""Reap the children an earlier image of this daemon left behind when it re-executed itself in place.

``execv`` keeps the pid, so the agents the earlier image spawned are still this process's children, but no
``Popen`` knows them any more. The engine collects the ones its instances record: it adopts the live ones and
reaps each when it ends, and collects one that ended during the exec. Any other inherited child would be
reaped by nobody and stay a zombie for as long as the daemon lives: a process the engine did not recognise
as its agent and stopped as a leftover, or the agent of an instance that is no longer declared.

`InheritedChildren` takes a pidfd for every child at start-up (before the daemon spawns anything itself) and
reaps each one that has ended, unless the engine records that pid: then it waits until the engine no longer
does (what the engine adopted it reaps itself; what it only stopped is reaped here). Holding pidfds means a
pid that is reused after the engine reaped it is never touched.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Callable, Collection
from dataclasses import dataclass

import anyio
import structlog

from supervisor.engine.pidfd import collect

__all__ = ["InheritedChildren", "Reaped"]

log = structlog.get_logger("supervisor.daemon")


@dataclass(frozen=True, slots=True)
class Reaped:
    """An inherited child that was reaped, and how it ended."""

    pid: int
    how: str


class InheritedChildren:
    """The children this process had when it started; ``busy`` returns the pids the engine watches now."""

    def __init__(self, pidfds: dict[int, int], busy: Callable[[], Collection[int]]) -> None:
        self._fds = dict(pidfds)
        self._pids = {fd: pid for pid, fd in self._fds.items()}
        self._busy = busy
        self._parked: set[int] = set()
        self._epoll = select.epoll()
        for fd in self._fds.values():
            self._epoll.register(fd, select.EPOLLIN)

    @classmethod
    def take(cls, busy: Callable[[], Collection[int]]) -> InheritedChildren:
        """Hold every current child of this process. Call it before the process spawns children of its own."""
        import psutil  # a re-exec's alone: a plain start does without it

        fds: dict[int, int] = {}
        for child in psutil.Process().children():
            with contextlib.suppress(OSError):  # only we reap our children, so the pid is still this child
                fds[child.pid] = os.pidfd_open(child.pid)
        return cls(fds, busy)

    def __len__(self) -> int:
        return len(self._fds)

    @property
    def pids(self) -> frozenset[int]:
        return frozenset(self._fds)

    @property
    def waiting(self) -> bool:
        """A child ended while the engine still recorded its pid: `reap` again once the engine moves on."""
        return bool(self._parked)

    def reap(self) -> list[Reaped]:
        """Reap every held child that has ended and is not the engine's to reap; log and return them."""
        if not self._fds:
            return []
        ended = {self._pids[fd] for fd, _ in self._epoll.poll(0)} | self._parked
        if not ended:
            return []
        busy = self._busy()
        reaped: list[Reaped] = []
        for pid in sorted(ended):
            if pid in busy:
                self._park(pid)
                continue
            try:
                status = collect(os.P_PIDFD, self._fds[pid])
            except ChildProcessError:  # the engine reaped it
                self._drop(pid)
                continue
            if status is None:  # its last threads are still exiting: look again after the next engine event
                self._park(pid)
                continue
            self._drop(pid)
            reaped.append(Reaped(pid, status.describe()))
            log.info("inherited_child_reaped", pid=pid, exit=reaped[-1].how)
        return reaped

    async def watch(self) -> None:
        """Reap children as they end, until cancelled."""
        while True:
            await anyio.wait_readable(self._epoll.fileno())
            self.reap()

    def close(self) -> None:
        """Let go of every child still held (they are left running)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._pids.clear()
        self._parked.clear()
        self._epoll.close()

    def _park(self, pid: int) -> None:
        if pid not in self._parked:
            self._epoll.unregister(self._fds[pid])
            self._parked.add(pid)

    def _drop(self, pid: int) -> None:
        fd = self._fds.pop(pid)
        del self._pids[fd]
        if pid in self._parked:
            self._parked.discard(pid)
        else:
            self._epoll.unregister(fd)
        os.close(fd)
