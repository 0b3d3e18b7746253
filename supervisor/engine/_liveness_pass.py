"""The liveness of every instance whose probe is ``process``, checked in one pass per interval.

A ``process`` probe asks only whether the process is alive, which a look at its pidfd answers without any I/O
to wait for. One timer per instance would wake the event loop, and each actor's task, once per instance per
interval: at a thousand instances that was about half of an idle daemon's CPU. Here the watches that wait for
their next check are due together, on a grid of their interval, and one task checks all that are due when the
grid comes round. A passing check that changes nothing but ``last_seen`` is taken in place (`Pulsed.absorb`);
only a result the watch must act on (a failure, a change of health, ``last_seen`` to write) wakes its task.
A waiting watch awaits a bare future of the event loop: a cancel scope and a sleep of its own would cost each
idle instance ~1.5 KB and a timer in the loop's heap.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import Protocol

import anyio

from supervisor.engine.probes import ProbeResult
from supervisor.models import utcnow

__all__ = ["LivenessPass", "Pulsed", "pass_tick"]

_SLACK = 0.001
"""A timer may fire this much before its time: a watch due by then is checked in this pass."""


class Pulsed(Protocol):
    """What the pass needs of a watch waiting for its next check."""

    @property
    def next_live(self) -> float:
        """When its next check is due, on the event loop's clock."""
        ...

    def check_now(self) -> ProbeResult | None:
        """Its probe's result now, or None when its probe is no longer one the pass runs."""
        ...

    def absorb(self, result: ProbeResult, checked_at: datetime, now: float) -> bool:
        """Take a result in place when it needs nothing awaited (and set the next check); False when the
        watch must act on it."""
        ...


class _Waiting:
    __slots__ = ("result", "watch", "woken")

    def __init__(self, watch: Pulsed, woken: asyncio.Future[None]) -> None:
        self.watch = watch
        self.woken = woken
        self.result: ProbeResult | None = None

    def wake(self) -> None:
        if not self.woken.done():
            self.woken.set_result(None)


class LivenessPass:
    """The watches waiting for a check, and the one task (`run`) that checks them."""

    def __init__(self) -> None:
        self._waiting: dict[int, _Waiting] = {}
        self._wake = math.inf  # when `run` is asleep until
        self._sleep: anyio.CancelScope | None = None
        self.running = False
        self.passes = 0

    async def run(self) -> None:
        """Check the watches as they fall due, until cancelled."""
        self.running = True
        try:
            while True:
                self._wake = min((w.watch.next_live for w in self._waiting.values()), default=math.inf)
                with anyio.CancelScope() as self._sleep:
                    if math.isinf(self._wake):
                        await anyio.sleep_forever()
                    await anyio.sleep(max(self._wake - anyio.current_time(), 0.0))
                self._sleep = None
                self._wake = math.inf
                self._check_due(anyio.current_time())
        finally:
            self.running = False
            for waiting in list(self._waiting.values()):
                waiting.wake()  # each watch goes back to a timer of its own

    async def next_result(self, watch: Pulsed, until: float) -> ProbeResult | None:
        """Wait until a check of ``watch`` gives a result it must act on (or one the pass cannot take: then
        None, as when the loop's clock reaches ``until`` first)."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(watch, loop.create_future())
        key = id(watch)
        self._waiting[key] = waiting
        if watch.next_live < self._wake and self._sleep is not None:
            self._sleep.cancel()  # due before the pass's wake-up: it sets a new one
        timer = loop.call_at(until, waiting.wake) if math.isfinite(until) else None
        try:
            await waiting.woken
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiting.get(key) is waiting:
                del self._waiting[key]
        return waiting.result

    def _check_due(self, now: float) -> None:
        checked_at: datetime | None = None
        for key, waiting in list(self._waiting.items()):
            watch = waiting.watch
            if watch.next_live > now + _SLACK:
                continue
            result = watch.check_now()
            if result is not None:
                checked_at = checked_at or utcnow()
                if watch.absorb(result, checked_at, now):
                    continue
            waiting.result = result
            del self._waiting[key]
            waiting.wake()
        self.passes += 1


def pass_tick(when: float, interval: float) -> float:
    """The first step of the pass's grid (multiples of ``interval``) from half an interval before ``when``:
    every watch of one interval is due at the same moment, and none is checked more than half an interval
    early or late."""
    if interval <= 0:
        return when
    return math.ceil((when - interval / 2) / interval) * interval
