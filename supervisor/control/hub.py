"""Fan-out of lifecycle events to every subscriber of the control API's event stream (the daemon's and the
in-memory test target's)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from supervisor.engine.events import Event

__all__ = ["EventHub"]

_BUFFER = 1024


class EventHub:
    """A slow subscriber loses its oldest backlog, never slows the engine down."""

    def __init__(self) -> None:
        self._subscribers: set[MemoryObjectSendStream[Event]] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Event) -> None:
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except anyio.WouldBlock:
                continue
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(stream)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Event]]:
        send, receive = anyio.create_memory_object_stream[Event](_BUFFER)
        self._subscribers.add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
