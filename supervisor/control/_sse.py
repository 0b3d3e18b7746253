"""Server-sent events for ``GET /v1/events``: live lifecycle events, keep-alive comments, a clean end, and
resuming from ``Last-Event-ID``.

A stream never ends on its own, so the server must be able to close every open stream when it shuts down
(`EventStreams.close_all`); otherwise a graceful shutdown would wait for clients that never leave. A short
history of recent events is kept so that ``eyriectl events`` can show what just happened, and so that a
client that reconnects with the id of the last event it saw gets every later event still in that history.

Every message carries its event's ``id:`` (`supervisor.control.hub`). A stream sends its events in id order
without holes: an event it did not receive live (its subscription lagged) is taken from the history; what
the history no longer has, or what happened between two daemon starts, is announced by a ``gap`` event (an
`Event` with ``event: "gap"`` and no id) before the stream goes on.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.responses import Response

from supervisor.control.hub import parse_event_id
from supervisor.engine.events import Event
from supervisor.models import utcnow

if TYPE_CHECKING:
    from anyio.abc import TaskStatus
    from starlette.types import Receive, Scope, Send

__all__ = ["EventHistory", "EventStreamResponse", "EventStreams", "encode_event"]

log = structlog.get_logger("supervisor.control")

Subscribe = Callable[[], AbstractAsyncContextManager[AsyncIterator[Event]]]
Position = tuple[str, int]

_CATCH_UP = 1.0
"""Seconds a stream waits for the history to record an event it missed live before calling it a gap."""


def encode_event(event: Event) -> bytes:
    """One SSE message: ``id: <event id>`` (when it has one), ``data: <Event JSON>`` and a blank line."""
    head = f"id: {event.id}\n".encode() if event.id else b""
    return head + b"data: " + event.model_dump_json().encode() + b"\n\n"


class EventHistory:
    """The most recent events, recorded by one background subscription for the app's lifetime."""

    def __init__(self, size: int) -> None:
        self._events: collections.deque[Event] = collections.deque(maxlen=size)
        self._waiters: list[anyio.Event] = []

    def recent(self, limit: int) -> list[Event]:
        if limit <= 0:
            return []
        return list(self._events)[-limit:]

    def all(self) -> list[Event]:
        return list(self._events)

    @property
    def last_id(self) -> str:
        return self._events[-1].id if self._events else ""

    def between(self, after: Position, before: Position) -> list[Event]:
        """The recorded events of ``after``'s daemon start strictly between the two positions."""
        found = []
        for event in self._events:
            pos = parse_event_id(event.id)
            if pos is not None and pos[0] == after[0] and after[1] < pos[1] < before[1]:
                found.append(event)
        return found

    async def recorded(self, position: Position) -> None:
        """Return once the event at ``position`` (or a later one) is recorded, or after `_CATCH_UP` s."""
        with anyio.move_on_after(_CATCH_UP):
            while not self._reached(position):
                waiter = anyio.Event()
                self._waiters.append(waiter)
                await waiter.wait()

    def _reached(self, position: Position) -> bool:
        last = parse_event_id(self.last_id)
        return last is not None and (last[0] != position[0] or last[1] >= position[1])

    def _append(self, event: Event) -> None:
        self._events.append(event)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()

    async def record(self, subscribe: Subscribe, *, task_status: TaskStatus[None]) -> None:
        """Append every event until cancelled; ``task_status`` fires once subscribed.

        A failing subscription costs the history only: it is logged, and the API keeps serving.
        """
        started = False
        try:
            async with subscribe() as events:
                if isinstance(events, MemoryObjectReceiveStream):
                    # what the hub kept while the API was not served is history before any request is
                    # answered: a stream's position (and the gaps it fills from here) must not lag behind
                    self._take_waiting(events)
                task_status.started()
                started = True
                async for event in events:
                    self._append(event)
        except Exception:
            log.exception("event_history_failed")
            if not started:
                task_status.started()

    def _take_waiting(self, events: MemoryObjectReceiveStream[Event]) -> None:
        while True:
            try:
                self._append(events.receive_nowait())
            except anyio.WouldBlock:
                return


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


def _gap(last: Position, last_id: str, next_id: str) -> Event:
    if next_id.rpartition("-")[0] != last[0]:
        detail = f"eyried restarted after event {last_id}: what happened in between is not known"
    else:
        detail = f"events after {last_id} are no longer kept; the stream goes on from {next_id}"
    return Event(
        time=utcnow(), event="gap", detail=detail, data={"last_event_id": last_id, "next_event_id": next_id}
    )


class _Sequencer:
    """What one stream has sent so far: skips what the client has, fills holes from the history."""

    def __init__(self, history: EventHistory, last_event_id: str | None) -> None:
        self._history = history
        self.last_id = last_event_id or ""
        self._last: Position | None = None
        if last_event_id is not None:
            self._last = parse_event_id(last_event_id) or ("", 0)

    async def messages(self, event: Event) -> list[Event]:
        """The events to send, in order, for ``event`` (none when the client has it already)."""
        pos = parse_event_id(event.id)
        if pos is None:
            return [event]
        last, out = self._last, []
        if last is not None:
            if pos[0] == last[0] and pos[1] <= last[1]:
                return []
            if pos[0] == last[0] and pos[1] > last[1] + 1:
                await self._history.recorded((pos[0], pos[1] - 1))
                out = self._history.between(last, pos)
            if pos[0] != last[0] or len(out) < pos[1] - last[1] - 1:
                out = [_gap(last, self.last_id, event.id), *out]
        self._last, self.last_id = pos, event.id
        return [*out, event]


class EventStreamResponse(Response):
    """``text/event-stream``: the backlog (the events after ``last_event_id``, or the last ``replay``),
    then every new one, until either side leaves."""

    media_type = "text/event-stream"

    def __init__(
        self,
        subscribe: Subscribe,
        *,
        streams: EventStreams,
        keepalive: float,
        history: EventHistory,
        replay: int = 0,
        last_event_id: str | None = None,
    ) -> None:
        # No Response.__init__: it would declare a Content-Length for a body that never ends.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._subscribe = subscribe
        self._streams = streams
        self._keepalive = keepalive
        self._history = history
        self._replay = replay
        self._last_event_id = last_event_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lock = anyio.Lock()
        sequencer = _Sequencer(self._history, self._last_event_id)

        async def emit(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def emit_event(event: Event) -> None:
            for message in await sequencer.messages(event):
                await emit(encode_event(message))

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
                    resuming = self._last_event_id is not None
                    for event in self._history.all() if resuming else self._history.recent(self._replay):
                        await emit_event(event)
                    if not sequencer.last_id and self._history.last_id:
                        # the client's position, so that a reconnect resumes from here
                        await emit(f"id: {self._history.last_id}\n\n".encode())
                        sequencer = _Sequencer(self._history, self._history.last_id)
                    async for event in events:
                        await emit_event(event)
                    tg.cancel_scope.cancel()
                finally:
                    self._streams.discard(tg.cancel_scope)
        except OSError:
            return  # the client went away mid-write: nothing left to tell it
        await send({"type": "http.response.body", "body": b"", "more_body": False})
