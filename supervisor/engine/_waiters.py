"""Waiting on an actor: callers of ``start --wait`` and ``restart --wait`` until an attempt settles, of
``stop --wait`` until the process is gone; and the actor's loop until a command comes in."""

from __future__ import annotations

import anyio

__all__ = ["Doorbell", "StartWaiter", "Waiters"]


class StartWaiter:
    """Set by the outcome (running, backing off, failed) of the first start attempt numbered ``attempt`` or
    later — not by a stop that happens on the way, such as the one a restart begins with."""

    __slots__ = ("attempt", "event")

    def __init__(self, attempt: int) -> None:
        self.event = anyio.Event()
        self.attempt = attempt


class Waiters:
    """Callers waiting on the actor. Start attempts are numbered; one runs from the spawn (or adoption) to
    the restart decision on its end, and a settled status in it releases the start waiters of that attempt
    and earlier ones."""

    def __init__(self) -> None:
        self._starts: list[StartWaiter] = []
        self._stops: list[anyio.Event] = []
        self._attempt = 0
        self._in_attempt = False

    def start(self, *, current_counts: bool = True) -> StartWaiter:
        """A waiter settled by the attempt under way (unless ``current_counts`` is false) or the next."""
        current = self._in_attempt and current_counts
        waiter = StartWaiter(self._attempt if current else self._attempt + 1)
        self._starts.append(waiter)
        return waiter

    def attempt_begins(self) -> None:
        self._attempt += 1
        self._in_attempt = True

    def attempt_ends(self) -> None:
        self._in_attempt = False

    def stop(self) -> anyio.Event:
        event = anyio.Event()
        self._stops.append(event)
        return event

    def attempt_settled(self) -> None:
        """The attempt under way (if any) settled: release whoever waits for it or an earlier one."""
        if not self._in_attempt:
            return
        keep = []
        for waiter in self._starts:
            if waiter.attempt <= self._attempt:
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


class Doorbell:
    """Wakes the actor's loop; a ring while the loop is busy is kept for its next wait."""

    def __init__(self) -> None:
        self._rung = False
        self._event: anyio.Event | None = None  # only while the loop waits: an idle one costs no queue

    def ring(self) -> None:
        self._rung = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if not self._rung:
            self._event = event = anyio.Event()
            try:
                await event.wait()
            finally:
                if self._event is event:
                    self._event = None
        self._rung = False
