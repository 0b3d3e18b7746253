"""Who waits on an actor's commands: ``start --wait`` and ``restart --wait`` until an attempt settles,
``stop --wait`` until the process is gone."""

from __future__ import annotations

import anyio

__all__ = ["StartWaiter", "Waiters"]


class StartWaiter:
    """Set by the outcome (running, backing off, failed) of the first start attempt numbered ``attempt`` or
    later — not by a stop that happens on the way, such as the one a restart begins with."""

    __slots__ = ("attempt", "event")

    def __init__(self, attempt: int) -> None:
        self.event = anyio.Event()
        self.attempt = attempt


class Waiters:
    def __init__(self) -> None:
        self._starts: list[StartWaiter] = []
        self._stops: list[anyio.Event] = []

    def start(self, attempt: int) -> StartWaiter:
        waiter = StartWaiter(attempt)
        self._starts.append(waiter)
        return waiter

    def stop(self) -> anyio.Event:
        event = anyio.Event()
        self._stops.append(event)
        return event

    def attempt_settled(self, attempt: int) -> None:
        """Attempt number ``attempt`` settled: release whoever waits for it or an earlier one."""
        keep = []
        for waiter in self._starts:
            if waiter.attempt <= attempt:
                waiter.event.set()
            else:
                keep.append(waiter)
        self._starts = keep

    def stopped(self) -> None:
        for event in self._stops:
            event.set()
        self._stops = []

    def release_all(self) -> None:
        """The actor ended: nobody waits any longer."""
        for waiter in self._starts:
            waiter.event.set()
        for event in self._stops:
            event.set()
