"""The signals the daemon acts on, and how a re-exec hands the pending ones to the next process image."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable

import anyio

__all__ = ["SIGNALS", "carried_to_next_image", "next_ending"]

SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)
"""What the daemon acts on: SIGHUP reloads, SIGTERM and SIGINT stop the fleet, SIGUSR2 re-executes it."""
_CARRIED = frozenset({signal.SIGTERM, signal.SIGINT})
"""Requests a re-exec must not lose: the next image acts on them (it reloads anyway: it reads the file)."""
_SIGNAL_SETTLE = 0.01
"""Seconds for a signal the kernel delivered just before it was blocked to reach the receiver (its handler
runs on a later turn of the event loop)."""


async def next_ending(signals: AsyncIterator[int], reload: Callable[[], object]) -> signal.Signals:
    """Call ``reload`` on every SIGHUP; return the first signal that ends this image."""
    async for signum in signals:
        if signum != signal.SIGHUP:
            return signal.Signals(signum)
        reload()
    raise AssertionError("the signal receiver ended")


async def carried_to_next_image(signals: AsyncIterator[int]) -> tuple[signal.Signals, ...]:
    """Block SIGNALS for the next image, and return the stop requests that arrived since the re-exec began.

    A signal delivered from now on stays pending across ``execv`` and reaches the next image's handlers.
    One that already reached ours is taken from the receiver; `supervisor.daemon.main` raises it again.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    carried: list[signal.Signals] = []
    with anyio.move_on_after(_SIGNAL_SETTLE):
        async for signum in signals:
            if signum in _CARRIED and signum not in carried:
                carried.append(signal.Signals(signum))
    return tuple(carried)
