"""systemd's ``STATUS=`` line, kept current without costing the event loop O(N) per event.

Counting the fleet's states reads every instance; a crash storm or the start of a large fleet emits events by
the thousand. So an event only marks the line stale, and the line is recounted (from the records as last
written, shared, not copied) at most once per `INTERVAL`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from supervisor.engine.states import Phase
from supervisor.models import Instance, InstanceStatus
from supervisor.systemd.notify import Notifier

__all__ = ["INTERVAL", "StatusLine", "status_summary"]

INTERVAL = 0.5
"""Seconds between two recounts at most: what ``systemctl status`` shows lags the fleet by no more."""


class StatusLine:
    """Sends the fleet's summary to systemd when it changed; a no-op when not under systemd."""

    def __init__(self, notifier: Notifier, instances: Callable[[], Iterable[Instance]]) -> None:
        self._notifier = notifier
        self._instances = instances
        self._sent = ""
        self._pending: asyncio.TimerHandle | None = None

    def stale(self) -> None:
        """Something changed: recount within `INTERVAL` (once, however many events arrive meanwhile)."""
        if self._notifier.enabled and self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(INTERVAL, self.publish)

    def publish(self) -> None:
        """Recount now, and send the line if it changed."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if not self._notifier.enabled:
            return
        summary = status_summary(list(self._instances()))
        if summary != self._sent:
            self._sent = summary
            self._notifier.status(summary)


def status_summary(instances: list[Instance]) -> str:
    """One line for systemd's STATUS=: ``3 running, 1 backoff, 0 error``."""
    running = sum(i.status is InstanceStatus.RUNNING for i in instances)
    error = sum(i.status is InstanceStatus.ERROR for i in instances)
    backoff = sum(i.phase == Phase.BACKOFF for i in instances)
    starting = sum(i.status is InstanceStatus.STARTING for i in instances)
    text = f"{running} running, {backoff} backoff, {error} error"
    return f"{text}, {starting} starting" if starting else text
