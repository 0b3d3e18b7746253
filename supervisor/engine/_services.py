"""What every actor shares with the engine, and the gate that picks where a short blocking call runs."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from supervisor.engine._liveness_pass import LivenessPass
from supervisor.engine._stop_journals import StopJournals
from supervisor.engine._write_batch import WriteBatch
from supervisor.engine.events import Event
from supervisor.engine.process import SpawnedProcess
from supervisor.engine.runtime import InstanceRuntime
from supervisor.engine.stop import ProcScanner
from supervisor.models import Instance
from supervisor.port_claims import ClaimRegistry
from supervisor.sandbox.confine import Sandboxes
from supervisor.store import Store

__all__ = ["Crowd", "PortCheck", "Relocator", "Services"]

PortCheck = tuple[str | None, bool]
"""A port checked before a spawn in a crowd: who else claims it (None when the claim is ours), and whether a
socket is bound to it."""

Relocator = Callable[[InstanceRuntime, str], Awaitable[InstanceRuntime | None]]
"""Moves an instance whose port a stranger holds (named by the ``str``) to a free port: its runtime on the new
port (config re-rendered, ``instance.json`` updated), or None when it must not move."""


@dataclass(slots=True, eq=False)
class Crowd:
    """Chooses where a short blocking call (a fork/exec, a state write) runs. A lone call (a respawn,
    typically) is quicker on the event loop than a round trip through a worker thread, which costs two
    wake-ups that a busy machine can delay by milliseconds; calls that come in a crowd (a fleet starting)
    run in worker threads, in parallel, and keep the loop free. More than ``size`` calls within ``window``
    seconds make a crowd."""

    size: int = 1
    window: float = 0.01
    recent: deque[float] = field(default_factory=deque)
    surge_until: float = 0.0

    def crowded(self, now: float) -> bool:
        recent = self.recent
        while recent and now - recent[0] >= self.window:
            recent.popleft()
        recent.append(now)
        return len(recent) > self.size or now < self.surge_until

    def surge(self, now: float, seconds: float) -> None:
        """Calls are known to come in a crowd for the next ``seconds`` (a fleet stopping): when each takes
        longer than ``window`` (a slow disk), the count alone would run them one by one on the loop."""
        self.surge_until = max(self.surge_until, now + seconds)


@dataclass(frozen=True, slots=True)
class Services:
    """What every actor shares with the engine."""

    store: Store
    boot_id: str
    scanner: ProcScanner
    threads: anyio.CapacityLimiter  # every blocking call of the engine (writes, spawns, scans) shares it
    request_sweep: Callable[[str, bool], None]  # (instance id, urgent): end leftovers of an earlier run
    spawning: Crowd  # fork/exec
    writing: Crowd  # instance.json writes
    emit: Callable[[Event], None]
    claims: ClaimRegistry  # machine-wide port claims
    batch: WriteBatch[Instance]  # crowded state writes, written together
    port_checks: WriteBatch[PortCheck]  # a crowd's port claims and bind checks, made together
    spawns: WriteBatch[tuple[SpawnedProcess, int]]  # a crowd's fork/execs (each child and its log's fd)
    relocate: Relocator | None = None
    sandboxes: Sandboxes = field(default_factory=Sandboxes)  # each instance's Landlock ruleset
    liveness: LivenessPass = field(default_factory=LivenessPass)  # checks every `process` liveness probe
    journals: StopJournals | None = None  # a crowd of stops on disk in one file before their signals
