"""What each instance's process tree uses (CPU, memory, processes), sampled on its liveness interval, and the
memory limit that restarts a tree staying above it.

One sampler serves the whole engine: each wake-up reads, in one worker thread, the trees of every instance
whose interval is due (instances with the same interval are due together, on the grid of the liveness pass,
`pass_tick`), so a fleet costs one wake-up per interval, the one its liveness checks take, rather than one
timer per instance.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import structlog

from supervisor.engine._announce import announce
from supervisor.engine._liveness_pass import pass_tick
from supervisor.engine._services import Services
from supervisor.engine._usage import Usage, tree_usage
from supervisor.engine.probes import ProbeResult
from supervisor.engine.process import ProcessHandle
from supervisor.engine.procfs import CLK_TCK
from supervisor.engine.runtime import InstanceRuntime
from supervisor.engine.states import Phase
from supervisor.models import Instance

__all__ = ["LimitWatch", "ProcessUsage", "ResourceSample", "ResourceSampler", "Sampled"]

_log = structlog.get_logger("supervisor.engine")
_IDLE_WAKE = 10.0
"""Seconds between two looks for processes not sampled yet: the default liveness interval, so that an idle
fleet's looks fall in its sampling passes and cost no wake-up of their own."""
_REWALK = 3


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One process of an instance's tree at the last sample."""

    pid: int
    ppid: int
    cpu_percent: float | None  # of one core, since the sample before (None: first seen now)
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """An instance's whole process tree at the last sample, with the one before for CPU rates. A pass only
    stores what it read; the figures are worked out when somebody asks (a listing, a scrape)."""

    tree: list[Usage]  # the main process first
    before: list[Usage] | None  # the tree at the sample before (None: this is the first)
    elapsed: float  # seconds since the sample before

    @property
    def memory_bytes(self) -> int:
        """RSS summed over the tree."""
        return sum(u.rss_bytes for u in self.tree)

    @property
    def cpu_seconds(self) -> float:
        """User + system time of the live tree."""
        return sum(u.cpu_ticks for u in self.tree) / CLK_TCK

    @property
    def cpu_percent(self) -> float | None:
        """Percent of one core over the last interval (None after one sample); a process new since the sample
        before counts from now."""
        if self.before is None:
            return None
        before = self._ticks_before()
        ticks = sum(max(u.cpu_ticks - before.get(u.pid, u.cpu_ticks), 0) for u in self.tree)
        return self._percent(ticks)

    @property
    def processes(self) -> list[ProcessUsage]:
        before = self._ticks_before() if self.before is not None else None
        return [
            ProcessUsage(
                u.pid,
                u.ppid,
                None if before is None or u.pid not in before else self._percent(u.cpu_ticks - before[u.pid]),
                u.rss_bytes,
            )
            for u in self.tree
        ]

    def _ticks_before(self) -> dict[int, int]:
        return {u.pid: u.cpu_ticks for u in self.before or ()}

    def _percent(self, ticks: int) -> float | None:
        if self.elapsed <= 0:
            return None
        return round(max(ticks, 0) / CLK_TCK / self.elapsed * 100, 1)


class Sampled(Protocol):
    """What the sampler needs of an actor."""

    runtime: InstanceRuntime
    proc: ProcessHandle | None
    phase: Phase
    services: Services
    limits: LimitWatch

    @property
    def inst(self) -> Instance: ...

    @property
    def log(self) -> Any: ...


class LimitWatch:
    """Ends an actor's liveness watch when the sampler finds its tree over a limit, with the reason.

    A trip cancels the watch's scope directly: no task waits for it (one per running instance). The scope is
    the watch's own, which the process's end cancels too (`supervisor.engine._watch.race_liveness`): a
    running instance holds one scope, not two."""

    __slots__ = ("_scope", "reason")

    def __init__(self) -> None:
        self._scope: anyio.CancelScope | None = None
        self.reason = ""

    def trip(self, reason: str) -> None:
        if self._scope is not None and not self._scope.cancel_called:
            self.reason = reason
            self._scope.cancel()

    def guard(self, scope: anyio.CancelScope | None) -> None:
        """From now on a trip cancels ``scope`` (None: nothing); a new scope forgets the last reason."""
        self._scope = scope
        if scope is not None:
            self.reason = ""

    async def watch(self, body: Callable[[], Awaitable[ProbeResult]]) -> ProbeResult:
        """Run ``body`` (the liveness watch) in a scope of its own until it returns, or a limit trips: then
        fail with the reason."""
        with anyio.CancelScope() as scope:
            self.guard(scope)
            try:
                return await body()
            finally:
                self.guard(None)
        return ProbeResult(False, self.reason)


@dataclass(slots=True, eq=False)
class _Track:
    """What the sampler remembers of one instance between samples."""

    proc: ProcessHandle  # the main process sampled
    due: float
    at: float = 0.0  # when the last sample was taken
    samples: int = 0
    over: int = 0  # samples in a row above the memory limit
    look: int = 0  # the last look that found the instance with this process


class ResourceSampler:
    """Samples the trees of every running instance; ``actors`` lists them afresh at each wake-up."""

    def __init__(self, actors: Callable[[], Iterable[Sampled]]) -> None:
        self._actors = actors
        self._tracks: dict[str, _Track] = {}
        self._looks = 0
        self.samples: dict[str, ResourceSample] = {}
        self.passes = 0

    async def run(self, threads: anyio.CapacityLimiter) -> None:
        """Sample until cancelled. A process started meanwhile is first sampled at the next step of a grid
        ``_IDLE_WAKE`` seconds apart; a pass that fails (a bug) is logged, and sampling goes on that much
        later."""
        while True:
            now = anyio.current_time()
            try:
                await self._pass(now, threads)
            except Exception:
                _log.exception("resource_sampling_failed")
                for track in self._tracks.values():
                    track.due = max(track.due, now + _IDLE_WAKE)
            wake = min((t.due for t in self._tracks.values()), default=math.inf)
            look = math.floor(now / _IDLE_WAKE + 1) * _IDLE_WAKE  # with the default interval's pass
            await anyio.sleep(max(min(wake, look) - anyio.current_time(), 0.0))

    async def _pass(self, now: float, threads: anyio.CapacityLimiter) -> None:
        due = self._due(now)
        if due:
            walks = [self._walk(actor.runtime.instance_id) for actor, _ in due]
            keys = [(proc.pid, proc.start_ticks, walk) for (_, proc), walk in zip(due, walks, strict=True)]
            trees = await anyio.to_thread.run_sync(_read_trees, keys, limiter=threads)
            self._record(due, trees, anyio.current_time())
            self.passes += 1

    def _walk(self, instance_id: str) -> bool:
        """Whether this sample looks for children: always in a tree that has some, every `_REWALK`-th
        sample of a lone process (most agents), which spares the ``children`` reads in between."""
        track = self._tracks[instance_id]
        track.samples += 1
        previous = self.samples.get(instance_id)
        return previous is None or len(previous.tree) > 1 or track.samples % _REWALK == 1

    def _due(self, now: float) -> list[tuple[Sampled, ProcessHandle]]:
        """The actors whose sample is due now, each with its main process; forgets those without one."""
        self._looks += 1
        look = self._looks
        tracks = self._tracks
        due: list[tuple[Sampled, ProcessHandle]] = []
        found = 0
        for actor in self._actors():
            proc = actor.proc
            if proc is None:
                continue
            instance_id = actor.runtime.instance_id
            track = tracks.get(instance_id)
            if track is None or track.proc is not proc:
                if track is None or (track.proc.pid, track.proc.start_ticks) != (proc.pid, proc.start_ticks):
                    track = tracks[instance_id] = _Track(proc, due=now)  # a new process: figures afresh
                    self.samples.pop(instance_id, None)
                track.proc = proc
            track.look = look
            found += 1
            if track.due <= now:
                due.append((actor, proc))
        if found < len(tracks):
            for gone in [key for key, track in tracks.items() if track.look != look]:
                del tracks[gone]
                self.samples.pop(gone, None)
        return due

    def _record(self, due: list[tuple[Sampled, ProcessHandle]], trees: list[list[Usage]], now: float) -> None:
        for (actor, proc), tree in zip(due, trees, strict=True):
            runtime = actor.runtime
            instance_id = runtime.instance_id
            track = self._tracks.get(instance_id)
            if track is None or track.proc is not proc:
                continue
            interval = runtime.health.interval
            track.due = pass_tick(now + interval, interval)
            previous = self.samples.get(instance_id)
            before = previous.tree if previous is not None else None
            sample = self.samples[instance_id] = ResourceSample(tree, before, now - track.at)
            track.at = now
            if runtime.memory.max_memory is not None:
                self._check_memory(actor, track, sample.memory_bytes)
            else:
                track.over = 0

    def _check_memory(self, actor: Sampled, track: _Track, memory_bytes: int) -> None:
        """Count samples above the limit while the instance runs; ``grace`` in a row end its tree."""
        policy = actor.runtime.memory
        reason = policy.exceeded(memory_bytes) if actor.phase is Phase.RUNNING else ""
        if not reason:
            track.over = 0
            return
        track.over += 1
        if track.over < policy.grace:
            return
        track.over = 0
        status = actor.inst.status
        data = {"max_memory": policy.max_memory, "memory_bytes": memory_bytes, "samples": policy.grace}
        announce(
            actor.services.emit,
            actor.log,
            actor.runtime,
            actor.inst,
            "memory_limit",
            status,
            status,
            reason,
            data,
        )
        actor.limits.trip(reason)


def _read_trees(keys: list[tuple[int, int, bool]]) -> list[list[Usage]]:
    return [tree_usage(pid, start_ticks, walk=walk) for pid, start_ticks, walk in keys]
