"""Server-sent events for ``GET /v1/events``: live lifecycle events, keep-alive comments, a clean end.

A stream never ends on its own, so the server must be able to close every open stream when it shuts down
(`EventStreams.close_all`); otherwise a graceful shutdown would wait for clients that never leave. A short
history of recent events is kept so that ``eyriectl events`` can show what just happened.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio
import structlog
from starlette.responses import Response

from supervisor.engine.events import Event

if TYPE_CHECKING:
    from anyio.abc import TaskStatus
    from starlette.types import Receive, Scope, Send

__all__ = ["EventHistory", "EventStreamResponse", "EventStreams", "encode_event"]

log = structlog.get_logger("supervisor.control")

Subscribe = Callable[[], AbstractAsyncContextManager[AsyncIterator[Event]]]


def encode_event(event: Event) -> bytes:
    """One SSE message: ``data: <Event JSON>`` and a blank line."""
    return b"data: " + event.model_dump_json().encode() + b"\n\n"


class EventHistory:
    """The most recent events, recorded by one background subscription for the app's lifetime."""

    def __init__(self, size: int) -> None:
        self._events: collections.deque[Event] = collections.deque(maxlen=size)

    def recent(self, limit: int) -> list[Event]:
        if limit <= 0:
            return []
        return list(self._events)[-limit:]

    async def record(self, subscribe: Subscribe, *, task_status: TaskStatus[None]) -> None:
        """Append every event until cancelled; ``task_status`` fires once subscribed.

        A failing subscription costs the history only: it is logged, and the API keeps serving.
        """
        started = False
        try:
            async with subscribe() as events:
                task_status.started()
                started = True
                async for event in events:
                    self._events.append(event)
        except Exception:
            log.exception("event_history_failed")
            if not started:
                task_status.started()


class EventStreams:
    """The open event streams, so that shutdown can end them all at once."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._closed = False

    def add(self, scope: anyio.CancelScope) -> None:
        if self._closed:
            scope.cancel()
        self._scopes.add(scope)

    def discard(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)

    def close_all(self) -> None:
        """End every open stream and refuse new ones: the server is going away."""
        self._closed = True
        for scope in list(self._scopes):
            scope.cancel()

    def __len__(self) -> int:
        return len(self._scopes)


class EventStreamResponse(Response):
    """``text/event-stream``: ``replay`` recent events, then every new one, until either side leaves."""

    media_type = "text/event-stream"

    def __init__(
        self,
        subscribe: Subscribe,
        *,
        streams: EventStreams,
        keepalive: float,
        replay: list[Event],
    ) -> None:
        # No Response.__init__: it would declare a Content-Length for a body that never ends.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._subscribe = subscribe
        self._streams = streams
        self._keepalive = keepalive
        self._replay = replay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lock = anyio.Lock()

        async def emit(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def until_disconnect(cancel: anyio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async def keep_alive() -> None:
            while True:
                await anyio.sleep(self._keepalive)
                await emit(b": keep-alive\n\n")

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async with self._subscribe() as events, anyio.create_task_group() as tg:
                self._streams.add(tg.cancel_scope)
                try:
                    tg.start_soon(until_disconnect, tg.cancel_scope)
                    tg.start_soon(keep_alive)
                    await emit(b": connected\n\n")
                    for event in self._replay:
                        await emit(encode_event(event))
                    async for event in events:
                        await emit(encode_event(event))
                    tg.cancel_scope.cancel()
                finally:
                    self._streams.discard(tg.cancel_scope)
        except OSError:
            return  # the client went away mid-write: nothing left to tell it
        await send({"type": "http.response.body", "body": b"", "more_body": False})
