"""Fan-out of lifecycle events to every subscriber of the control API's event stream (the daemon's and the
in-memory test target's).

Each published event gets its id here, ``<start>-<sequence>``: ``start`` is when this hub (one per daemon
image) was made, in nanoseconds, so the ids of a restarted or re-executed daemon never match an earlier one's,
and a client resuming from an id can tell that it missed a restart.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from supervisor.engine.events import Event

__all__ = ["EventHub", "parse_event_id"]

_BUFFER = 8192
"""Events a subscriber may be behind before it misses new ones (its stream then fills the hole from the
history, or says ``gap``). A start of 1,000 instances emits about 3,000; the events are shared, so a queue
costs memory only while a client lags."""


def parse_event_id(text: str) -> tuple[str, int] | None:
    """``(start, sequence)`` of an event id, or None when ``text`` is not one."""
    start, sep, seq = text.strip().rpartition("-")
    if not sep or not start or not seq.isdigit():
        return None
    return start, int(seq)


class EventHub:
    """A slow subscriber misses what comes past its backlog of `_BUFFER`, never slows the engine down."""

    def __init__(self, *, keep_until_served: bool = False) -> None:
        """``keep_until_served``: the events published until `served` are replayed to a subscriber that asks
        for them (``subscribe(kept=True)``: the API's history, when the API is served after the daemon's
        start-up). A client whose connection waited in the backlog meanwhile gets, as any other, only what
        comes after it subscribed."""
        self._subscribers: set[MemoryObjectSendStream[Event]] = set()
        self.start = str(time.time_ns())
        self._seq = 0
        self._kept: collections.deque[Event] | None = (
            collections.deque(maxlen=_BUFFER) if keep_until_served else None
        )

    def served(self) -> None:
        """The API records its own history from now on: what was kept for it is dropped."""
        self._kept = None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Event) -> None:
        self._seq += 1
        event = event.model_copy(update={"id": f"{self.start}-{self._seq}"})
        if self._kept is not None:
            self._kept.append(event)
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except anyio.WouldBlock:
                continue
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(stream)

    @contextlib.asynccontextmanager
    async def subscribe(self, *, kept: bool = False) -> AsyncIterator[AsyncIterator[Event]]:
        """Every event from now on; ``kept``: first those kept until `served`."""
        send, receive = anyio.create_memory_object_stream[Event](_BUFFER)
        for event in (self._kept or ()) if kept else ():
            send.send_nowait(event)
        self._subscribers.add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
