"""A lock and an event that hold their waiter queue only while someone waits.

Every instance's actor keeps a few of them, mostly idle: `anyio.Lock` and `anyio.Event` each allocate a
queue of waiters up front (most of a kilobyte), which at a thousand instances is megabytes of empty queues.
"""

from __future__ import annotations

from types import TracebackType

import anyio
from anyio.lowlevel import checkpoint

__all__ = ["SparseEvent", "SparseLock"]


class SparseLock:
    """`anyio.Lock` used as ``async with``: the real lock exists while it is held or waited for."""

    __slots__ = ("_lock", "_users")

    def __init__(self) -> None:
        self._lock: anyio.Lock | None = None
        self._users = 0

    async def __aenter__(self) -> None:
        if self._lock is None:
            self._lock = anyio.Lock()
        lock = self._lock
        self._users += 1
        try:
            await lock.acquire()
        except BaseException:
            self._leave()
            raise

    def locked(self) -> bool:
        """Whether it is held (or waited for)."""
        return self._users > 0

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._lock is not None
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._lock = None


class SparseEvent:
    """`anyio.Event`: set once, waited for by any number; the real event exists once someone waits."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._set = False

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            await checkpoint()
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()
