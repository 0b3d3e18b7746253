"""The signals the daemon acts on, received so that none can kill it and none is lost across a re-exec.

The daemon keeps SIGNALS blocked in every thread for its whole life and accepts them with ``sigwaitinfo`` on a
thread of its own. Handlers alone cannot be made safe: when they are removed before a re-exec, a signal the
kernel hands to any thread that has it unblocked (an idle worker thread) takes its default action and kills
the daemon. Blocked everywhere, a signal that nobody accepts stays pending, and a pending signal survives
``execv``: the next image accepts it. The one moment a thread unblocks them is the fork of a child
(`supervisor.engine.child_setup`); a signal arriving then reaches the handler installed here, which queues
it like the others, so no signal ever meets its default action while the daemon lives.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import signal
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable
from types import TracebackType

import anyio

__all__ = ["SIGNALS", "SignalListener", "block_signals", "next_ending"]

SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)
"""What the daemon acts on: SIGHUP reloads, SIGTERM and SIGINT stop the fleet, SIGUSR2 re-executes it."""
_WAKE = signal.SIGRTMIN + 1
"""Sent to the listener thread alone (``pthread_kill``) to end its wait; never sent to the process."""
_BLOCKED = (*SIGNALS, _WAKE)
_CARRIED = frozenset({signal.SIGTERM, signal.SIGINT})
"""Requests a re-exec must not lose: the next image acts on them (it reloads anyway: it reads the file)."""


def block_signals() -> set[int | signal.Signals]:
    """Block SIGNALS in the calling thread (and so in every thread it starts from now on); return the mask
    it had. Called before the daemon starts any thread."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)


async def next_ending(signals: AsyncIterable[int], reload: Callable[[], object]) -> signal.Signals:
    """Call ``reload`` on every SIGHUP; return the first signal that ends this image."""
    async for signum in signals:
        if signum != signal.SIGHUP:
            return signal.Signals(signum)
        reload()
    raise AssertionError("the signal receiver ended")


class SignalListener:
    """Accepts SIGNALS on a thread of its own and hands them to the event loop, in order.

    Use as a context manager inside the event loop. Closing it stops accepting: what arrives later stays
    pending (for the next image after a re-exec), and `carried` is what was accepted but not yet read. After a
    stop, `release` gives the thread back its mask and the process its handlers.
    """

    def __init__(self) -> None:
        self._accepted: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake_loop, self._woken = anyio.create_memory_object_stream[None](max_buffer_size=float("inf"))
        self._thread: threading.Thread | None = None
        self._mask: set[int | signal.Signals] = set()
        self._handlers: dict[int, object] = {}

    def __enter__(self) -> SignalListener:
        loop = asyncio.get_running_loop()
        self._mask = block_signals()
        self._handlers = {
            signum: signal.signal(signum, functools.partial(self._queue, loop)) for signum in SIGNALS
        }
        self._thread = threading.Thread(target=self._accept, args=(loop,), name="eyried-signals", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is not None:
            assert self._thread.ident is not None
            signal.pthread_kill(self._thread.ident, _WAKE)
            self._thread.join()
            self._thread = None

    async def __aiter__(self) -> AsyncIterator[int]:
        while True:
            try:
                yield self._accepted.get_nowait()
            except queue.Empty:
                await self._woken.receive()

    def carried(self) -> tuple[signal.Signals, ...]:
        """The stop requests accepted but not acted on, each once; call after the listener is closed."""
        carried: list[signal.Signals] = []
        while not self._accepted.empty():
            signum = self._accepted.get_nowait()
            if signum in _CARRIED and signum not in carried:
                carried.append(signal.Signals(signum))
        return tuple(carried)

    def release(self) -> None:
        """The calling thread's mask and the process's handlers as they were before `__enter__`."""
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def _accept(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            signum = signal.sigwaitinfo(_BLOCKED).si_signo
            if signum == _WAKE:
                return
            self._queue(loop, signum)

    def _queue(self, loop: asyncio.AbstractEventLoop, signum: int, _frame: object = None) -> None:
        self._accepted.put(signum)
        loop.call_soon_threadsafe(self._wake_loop.send_nowait, None)
