"""State writes that come in a crowd (a fleet starting or stopping, a crash storm), written together.

Each write is a short blocking call (read, change, write ``instance.json``). Sent to a worker thread one by
one, a crowd of them costs two event-loop wake-ups and a thread hand-off each, and the threads contend for the
interpreter with the loop that sends the signals and answers ``eyriectl ps``. Here the writes asked for while
one batch is being written wait together for the next one: a few thread calls for a crowd, each write in its
caller's order. Nothing is coalesced across instances: every write still lands, atomically, in its own file.
The port checks and the fork/execs of a crowd run in batches of their own the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
from anyio.lowlevel import checkpoint

__all__ = ["WriteBatch"]

T = TypeVar("T")

_CHUNKS = 2
"""Worker threads one batch is spread over: the writes' system calls run in parallel, outside the lock
of the interpreter, on a machine with more than one core."""


class _Pending(Generic[T]):
    __slots__ = ("done", "error", "job", "lead", "ran", "result")

    def __init__(self, job: Callable[[], T]) -> None:
        self.job = job
        self.done = anyio.Event()
        self.lead = False
        self.ran = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.job()
        except Exception as exc:  # the caller's own error, raised to it alone
            self.error = exc
        self.ran = True


class WriteBatch(Generic[T]):
    """Runs blocking jobs in worker threads, many at once: the first caller of a turn of the event loop
    leads, writing every job asked for by then; callers that come while it writes wait for the next batch,
    led by the first of them."""

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter = limiter
        self._queue: list[_Pending[T]] = []
        self._leading = False
        self.batches = 0

    async def run(self, job: Callable[[], T]) -> T:
        """``job()`` in a worker thread, batched with the others; its exception is raised here. Once asked
        for, a job runs to its end (as a blocking call in a thread does): cancelling the caller waits."""
        entry = _Pending(job)
        self._queue.append(entry)
        with anyio.CancelScope(shield=True):
            if self._leading:
                await entry.done.wait()
            if not entry.done.is_set() or entry.lead:
                await self._lead()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    async def _lead(self) -> None:
        self._leading = True
        batch: list[_Pending[T]] = []
        try:
            await checkpoint()  # the others asking in this turn of the loop join this batch
            batch, self._queue = self._queue, []
            async with anyio.create_task_group() as tg:
                for i in range(min(_CHUNKS, len(batch))):
                    tg.start_soon(self._write, batch[i::_CHUNKS])
            self.batches += 1
        finally:
            for entry in batch:
                if not entry.ran:
                    entry.error = RuntimeError("the state write was not run")
                entry.done.set()
            # those who asked meanwhile wait for the next batch, led by the first of them
            self._leading = bool(self._queue)
            if self._queue:
                self._queue[0].lead = True
                self._queue[0].done.set()

    async def _write(self, chunk: list[_Pending[T]]) -> None:
        await anyio.to_thread.run_sync(_run_all, chunk, limiter=self._limiter)


def _run_all(chunk: list[_Pending[T]]) -> None:
    for entry in chunk:
        entry.run()
