"""Waiting for a fleet to come to rest after the engine took it over: every instance adopted, started (up to
readiness), given up on, or not wanted running. Only the instances still on their way are looked at again,
each when an event of its own arrives, so the wait costs O(N) however the N events are spread."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from supervisor.engine.states import Phase

if TYPE_CHECKING:
    from supervisor.engine.actor import Actor

__all__ = ["Settled", "Settling", "at_rest"]

_RESTING = frozenset({Phase.RUNNING, Phase.HELD, Phase.BACKOFF, Phase.COOLDOWN, Phase.CLOSED})
_RECHECK = 1.0
"""Seconds between looks at the instances still on their way, should a change come without an event."""


def at_rest(actor: Actor) -> bool:
    """Running (ready), failed or waiting to retry, closed, or idle and not wanted running."""
    return actor.phase in _RESTING or (actor.phase is Phase.IDLE and actor.desired != "running")


@dataclass(eq=False)
class Settled:
    """How the instances came to rest."""

    adopted: int
    """Running processes taken over from before this engine started."""
    started: int
    """Started by this engine, and ready."""
    failed: int
    """Given up on, or waiting to retry."""
    stopped: int
    """Not wanted running (held back, or stopped by request)."""


@dataclass(eq=False)
class Settling:
    """One wait for the instances the engine supervised when it began."""

    actors: Callable[[], Mapping[str, Actor]]
    adopted: frozenset[str]
    pending: set[str] = field(default_factory=set)
    _noticed: set[str] = field(default_factory=set)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def noticed(self, instance_id: str) -> None:
        """An event of ``instance_id``: look at it again if it was on its way."""
        if instance_id in self.pending:
            self._noticed.add(instance_id)
            self._changed.set()

    async def wait(self) -> Settled:
        self.pending = set(self.actors())
        self._recheck(set(self.pending))
        while self.pending:
            timed_out = True
            with anyio.move_on_after(_RECHECK):
                await self._changed.wait()
                timed_out = False
            self._changed = anyio.Event()
            noticed, self._noticed = self._noticed, set()
            self._recheck(set(self.pending) if timed_out else noticed)
        return self._count()

    def _recheck(self, keys: set[str]) -> None:
        actors = self.actors()
        for key in keys:
            if (actor := actors.get(key)) is None or at_rest(actor):
                self.pending.discard(key)

    def _count(self) -> Settled:
        adopted = started = failed = stopped = 0
        for key, actor in self.actors().items():
            if actor.phase is Phase.RUNNING:
                if key in self.adopted:
                    adopted += 1
                else:
                    started += 1
            elif actor.phase in (Phase.HELD, Phase.BACKOFF, Phase.COOLDOWN):
                failed += 1
            else:
                stopped += 1
        return Settled(adopted=adopted, started=started, failed=failed, stopped=stopped)
