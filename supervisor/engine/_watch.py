"""Watching one run of an instance's process: readiness after the spawn, then liveness until it fails, each
raced against the process's own end."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import anyio

from supervisor.engine import probes
from supervisor.engine._launch import child_env
from supervisor.engine._liveness_pass import pass_tick
from supervisor.engine._logs import InstanceLog
from supervisor.engine._record import assign
from supervisor.engine._services import Services
from supervisor.engine.process import ExitStatus, ProcessHandle
from supervisor.engine.resources import LimitWatch
from supervisor.engine.runtime import InstanceRuntime
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import HealthStatus, Instance, utcnow

__all__ = ["Watch", "Watched", "race", "race_liveness", "ready_at_spawn"]

T = TypeVar("T")

_READY_POLL_FIRST = 0.02
_READY_POLL_MAX = 0.5
_LAST_SEEN_SAVE_EVERY = 300.0
_TICK_GRID = 0.5


class Watched(Protocol):
    """What watching needs of the actor; ``runtime`` is read afresh, policies apply live."""

    runtime: InstanceRuntime
    services: Services
    logs: InstanceLog
    probe_results: dict[str, tuple[probes.ProbeResult, datetime]]
    """``readiness``/``liveness`` → what the probe found last during this process's life, and when."""

    @property
    def inst(self) -> Instance: ...

    @property
    def log(self) -> Any: ...

    async def persist(self) -> None: ...

    async def set_health(self, status: HealthStatus, detail: str) -> None: ...


class Watch:
    """Probes ``proc``, spawned (or adopted) at ``since`` on the event loop's clock (one per running process:
    slotted)."""

    __slots__ = ("_actor", "_alive", "_failures", "_proc", "_seen_saved", "_since", "next_live")

    def __init__(self, actor: Watched, proc: ProcessHandle, since: float) -> None:
        self._actor = actor
        self._proc = proc
        self._since = since
        self.next_live = math.inf
        """When liveness is next checked, on the event loop's clock."""
        self._failures = 0
        self._seen_saved = since
        self._alive: probes.ProbeResult | None = None
        actor.probe_results.clear()

    async def check(self, probe: Probe) -> probes.ProbeResult:
        actor = self._actor
        rt = actor.runtime
        ctx = probes.ProbeContext(
            port=rt.port,
            process=self._proc,
            timeout=rt.health.timeout,
            instance_id=rt.instance_id,
            name=rt.name,
            cwd=rt.cwd,
            env=child_env(rt) if probe.kind == ProbeKind.EXEC else None,
            log=actor.logs.cursor,
        )
        if probe.kind != ProbeKind.LOG:
            return await probes.check(probe, ctx)
        async with actor.logs.lock:  # a rotation moves the bytes this probe reads
            return await probes.check(probe, ctx)

    async def readiness(self) -> probes.ProbeResult:
        rt = self._actor.runtime
        last = probes.ProbeResult(False, "no probe has run yet")
        poll = _READY_POLL_FIRST
        left = self._since + rt.health.start_timeout - anyio.current_time()
        with anyio.move_on_after(max(left, 0.0)):
            while True:
                last = await self.check(rt.ready)
                self._actor.probe_results["readiness"] = (last, utcnow())
                if last.ok:
                    return last
                await anyio.sleep(poll)
                poll = min(poll * 1.5, _READY_POLL_MAX)
        return probes.ProbeResult(False, f"not ready after {rt.health.start_timeout:g}s: {last.detail}")

    async def liveness(self) -> probes.ProbeResult:
        """Until liveness fails ``failure_threshold`` times in a row; meanwhile keep health, the restart
        count reset and last_seen current. A ``process`` probe is checked by the engine's shared pass."""
        actor = self._actor
        running_since = anyio.current_time()
        self._seen_saved = running_since
        self._failures = 0
        self.next_live = self._next_check(running_since)
        shared = actor.services.liveness
        while True:
            rt, inst = actor.runtime, actor.inst
            reset_at = running_since + rt.restart.reset_after if inst.restart_count > 0 else math.inf
            if rt.live is not None and rt.live.kind is ProbeKind.PROCESS and shared.running:
                result = await shared.next_result(self, reset_at)
                now = anyio.current_time()
            else:
                wake = min(self.next_live if rt.live is not None else math.inf, reset_at)
                if math.isinf(wake):
                    await anyio.sleep_forever()
                await anyio.sleep(max(wake - anyio.current_time(), 0.0))
                now = anyio.current_time()
                result = None
                if rt.live is not None and now >= self.next_live:
                    result = await self.check(rt.live)
                    actor.probe_results["liveness"] = (result, utcnow())
            inst = actor.inst
            if (
                inst.restart_count > 0
                and now - running_since >= rt.restart.reset_after
                and inst.health_status is not HealthStatus.UNHEALTHY
            ):
                inst.restart_count = 0
                actor.log.info("restart_count_reset", pid=inst.pid)
                await actor.persist()
            if result is None:
                if now >= self.next_live:  # the probe changed kind: checked afresh on its own grid
                    self.next_live = self._next_check(now)
                continue
            failed = await self._act_on(result, actor.probe_results["liveness"][1], now)
            if failed is not None:
                return failed

    def check_now(self) -> probes.ProbeResult | None:
        """The shared pass's check: the ``process`` probe now (None: the probe is no longer one). A probe
        that any live process passes gives the same answer each time: it is made once."""
        live = self._actor.runtime.live
        if live is None or live.kind is not ProbeKind.PROCESS:
            return None
        if live.seconds <= 0 and self._alive is not None and self._proc.alive():
            return self._alive
        result = probes.process_alive(live, self._proc)
        self._alive = result if result.ok and live.seconds <= 0 else None
        return result

    def absorb(self, result: probes.ProbeResult, checked_at: datetime, now: float) -> bool:
        """Take a check's result in place when it needs nothing written or announced (most checks of a
        healthy process); False when `liveness` must act on it."""
        actor = self._actor
        actor.probe_results["liveness"] = (result, checked_at)
        inst = actor.inst
        if not result.ok or inst.health_status is not HealthStatus.HEALTHY or self._save_due(now):
            return False
        self._failures = 0
        assign(inst, last_seen=checked_at)
        interval = actor.runtime.health.interval
        self.next_live = pass_tick(now + interval, interval)
        return True

    async def _act_on(
        self, result: probes.ProbeResult, checked_at: datetime, now: float
    ) -> probes.ProbeResult | None:
        """Count a check's result, keep health and last_seen; the failure that ends the watch, if it does."""
        actor = self._actor
        rt, inst = actor.runtime, actor.inst
        self.next_live = self._next_check(anyio.current_time())
        if result.ok:
            self._failures = 0
            assign(inst, last_seen=checked_at)
            if inst.health_status is not HealthStatus.HEALTHY:
                await actor.set_health(HealthStatus.HEALTHY, result.detail)
            elif self._save_due(now):
                self._seen_saved = now
                await actor.persist()
            return None
        self._failures += 1
        if inst.health_status is not HealthStatus.UNHEALTHY:
            await actor.set_health(HealthStatus.UNHEALTHY, result.detail)
        if self._failures >= rt.health.failure_threshold:
            return probes.ProbeResult(False, f"liveness failed {self._failures} times: {result.detail}")
        return None

    def _save_due(self, now: float) -> bool:
        """Whether last_seen is due to be written (it moves in memory at every check)."""
        return now - self._seen_saved >= max(_LAST_SEEN_SAVE_EVERY, self._actor.runtime.health.interval)

    def _next_check(self, now: float) -> float:
        """An interval after ``now``: on the shared pass's grid, or (a probe with I/O to wait for) on a finer
        one that spreads the fleet's probes over the interval by when each instance started."""
        interval = self._actor.runtime.health.interval
        live = self._actor.runtime.live
        if live is not None and live.kind is ProbeKind.PROCESS and self._actor.services.liveness.running:
            return pass_tick(now + interval, interval)
        return _on_grid(now + interval, interval)


async def race(proc: ProcessHandle, body: Callable[[], Awaitable[T]]) -> T | ExitStatus:
    """Run ``body`` until it returns or the process ends, whichever comes first.

    The process's end cancels ``body`` from the event loop's callback for its pidfd: no task watches it, and
    a cancel made outside any task is not described by anyio (naming the cancelling task costs ~45 µs), so a
    crash reaches the restart decision sooner."""
    with anyio.CancelScope() as scope:
        stop_watching = proc.on_end(scope.cancel)
        if stop_watching is None:  # ended already, or waited for elsewhere
            return await _race_in_tasks(proc, body)
        try:
            result = await body()
        finally:
            stop_watching()
    if scope.cancel_called:
        return await proc.wait()
    return result


async def race_liveness(
    proc: ProcessHandle, body: Callable[[], Awaitable[probes.ProbeResult]], limits: LimitWatch
) -> probes.ProbeResult | ExitStatus:
    """`race` for the liveness watch, in one scope that the process's end and a memory limit's trip
    (``limits``) both cancel: a running instance holds one cancel scope (~0.6 KB), not two. A process that
    has ended by then wins over a trip, as it does in `race`."""
    result: probes.ProbeResult | None = None
    with anyio.CancelScope() as scope:
        stop_watching = proc.on_end(scope.cancel)
        if stop_watching is None:  # ended already, or waited for elsewhere
            return await _race_in_tasks(proc, lambda: limits.watch(body))
        limits.guard(scope)
        try:
            result = await body()
        finally:
            limits.guard(None)
            stop_watching()
    if not scope.cancel_called or (limits.reason and proc.alive()):
        return result if result is not None else probes.ProbeResult(False, limits.reason)
    return await proc.wait()


async def _race_in_tasks(proc: ProcessHandle, body: Callable[[], Awaitable[T]]) -> T | ExitStatus:
    """`race` with a task waiting for the process, for when another task holds its wait."""
    first: list[T | ExitStatus] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            status = await proc.wait()
            if not first:
                first.append(status)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        result = await body()
        if not first:
            first.append(result)
        tg.cancel_scope.cancel()
    return first[0]


def ready_at_spawn(probe: Probe) -> bool:
    """A readiness probe that any live process passes at once."""
    return probe.kind == ProbeKind.PROCESS and probe.seconds <= 0


def _on_grid(when: float, interval: float) -> float:
    """Round a probe time up onto a grid shared by every instance (a twentieth of the interval, at most
    0.5 s), so that the probes of many instances wake the event loop once, not once each."""
    grid = min(_TICK_GRID, interval / 20) or interval
    return math.ceil(when / grid) * grid if grid > 0 else when
