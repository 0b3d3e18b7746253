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
from supervisor.engine._logs import InstanceLog
from supervisor.engine._record import assign
from supervisor.engine.process import ExitStatus, ProcessHandle
from supervisor.engine.runtime import InstanceRuntime
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import HealthStatus, Instance, utcnow

__all__ = ["Watch", "Watched", "race", "ready_at_spawn"]

T = TypeVar("T")

_READY_POLL_FIRST = 0.02
_READY_POLL_MAX = 0.5
_LAST_SEEN_SAVE_EVERY = 300.0
_TICK_GRID = 0.5


class Watched(Protocol):
    """What watching needs of the actor; ``runtime`` is read afresh, policies apply live."""

    runtime: InstanceRuntime
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
    """Probes ``proc``, spawned (or adopted) at ``since`` on the event loop's clock."""

    def __init__(self, actor: Watched, proc: ProcessHandle, since: float) -> None:
        self._actor = actor
        self._proc = proc
        self._since = since
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
        count reset and last_seen current."""
        actor = self._actor
        running_since = anyio.current_time()
        next_live = _on_grid(running_since + actor.runtime.health.interval, actor.runtime.health.interval)
        seen_saved = running_since
        failures = 0
        while True:
            rt, inst = actor.runtime, actor.inst
            wake = []
            if rt.live is not None:
                wake.append(next_live)
            if inst.restart_count > 0:
                wake.append(running_since + rt.restart.reset_after)
            if wake:
                await anyio.sleep(max(min(wake) - anyio.current_time(), 0.0))
            else:
                await anyio.sleep_forever()
            now = anyio.current_time()
            inst = actor.inst
            if (
                inst.restart_count > 0
                and now - running_since >= rt.restart.reset_after
                and inst.health_status is not HealthStatus.UNHEALTHY
            ):
                inst.restart_count = 0
                actor.log.info("restart_count_reset", pid=inst.pid)
                await actor.persist()
            if rt.live is None or now < next_live:
                continue
            result = await self.check(rt.live)
            checked_at = utcnow()
            actor.probe_results["liveness"] = (result, checked_at)
            next_live = _on_grid(anyio.current_time() + rt.health.interval, rt.health.interval)
            inst = actor.inst
            if result.ok:
                failures = 0
                assign(inst, last_seen=checked_at)
                if inst.health_status is not HealthStatus.HEALTHY:
                    await actor.set_health(HealthStatus.HEALTHY, result.detail)
                elif now - seen_saved >= max(_LAST_SEEN_SAVE_EVERY, rt.health.interval):
                    seen_saved = now
                    await actor.persist()
                continue
            failures += 1
            if inst.health_status is not HealthStatus.UNHEALTHY:
                await actor.set_health(HealthStatus.UNHEALTHY, result.detail)
            if failures >= rt.health.failure_threshold:
                return probes.ProbeResult(False, f"liveness failed {failures} times: {result.detail}")


async def race(proc: ProcessHandle, body: Callable[[], Awaitable[T]]) -> T | ExitStatus:
    """Run ``body`` until it returns or the process ends, whichever comes first."""
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
