"""The engine: one actor per instance in one task group, and the calls the daemon makes on them.

Each actor runs under `supervise`: one that raises is restarted with its instance's backoff, like a
crashed child, and never disturbs the others.

It stands alone: callers hand it ready-made `InstanceRuntime`s (it never reads the fleet file) and a `Store`
to record state in. ``run`` owns the task group; ``shutdown`` stops every process in parallel and ends
``run``. Cancelling ``run`` instead abandons the processes, which keep running and are adopted by the next
engine on the same store — that is what a daemon crash looks like.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import anyio
import anyio.abc
import structlog

from supervisor.engine import pidfd, procfs
from supervisor.engine._log_checks import QUIET_CHECKS, LogChecks
from supervisor.engine._services import Relocator
from supervisor.engine._settle import Settled, Settling
from supervisor.engine._stop_journals import StopJournals
from supervisor.engine._supervision import supervise
from supervisor.engine._write_batch import WriteBatch
from supervisor.engine.actor import Actor, Crowd, Services
from supervisor.engine.events import Event
from supervisor.engine.probes import ProbeResult
from supervisor.engine.process import current_boot_id
from supervisor.engine.resources import ResourceSample, ResourceSampler
from supervisor.engine.runtime import InstanceRuntime
from supervisor.engine.stop import ProcScanner
from supervisor.errors import NameExists, NotFound, StopIncomplete
from supervisor.models import Instance
from supervisor.port_claims import ClaimRegistry
from supervisor.store import Store

__all__ = ["Engine"]

log = structlog.get_logger("supervisor.engine")

_WAIT_MARGIN = 5.0
_KILL_AND_PORT_WAIT = 10.0
_SURGE = 2.0
"""Seconds for which state writes go to worker threads once many instances are stopping at once."""


class Engine:
    """Supervises instances: adopt or start them, restart them through their policy, stop them.

    ``on_event`` is called (synchronously, from the engine's tasks; it must not block) with every
    transition and health change. ``boot_id`` defaults to this machine's; another value simulates a reboot.
    ``log_check_interval``: seconds between log size checks; ``threads``: worker threads for blocking calls
    (state writes, spawns, /proc scans); ``sweep_delay``: how long leftovers of a crashed process may wait
    to be ended when nothing suggests they exist (its process group is empty). ``claims``: the machine-wide
    port claims (every spawn claims its port there); ``relocate``: what moves an instance whose port a
    stranger holds (without it, such a start fails).
    """

    def __init__(
        self,
        store: Store,
        *,
        boot_id: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        log_check_interval: float = 1.0,
        threads: int = 8,
        sweep_delay: float = 2.0,
        claims: ClaimRegistry | None = None,
        relocate: Relocator | None = None,
    ) -> None:
        self.store = store
        self.boot_id = boot_id if boot_id is not None else current_boot_id()
        self._on_event = on_event
        self._log_check_interval = log_check_interval
        self._threads = threads
        self._sweep_delay = sweep_delay
        self._claims = claims if claims is not None else ClaimRegistry()
        self._relocate = relocate
        self._sweep_pending: dict[str, int] = {}  # instance id → the tick its last unplanned exit was seen
        self._sweep_wanted: anyio.Event | None = None
        self._sweep_urgent: anyio.Event | None = None
        self._actors: dict[str, Actor] = {}
        self._adopted: set[str] = set()  # instances whose process was running when they were added
        self._settling: Settling | None = None
        self._stops_in_flight = 0
        self._adding: set[str] = set()
        self._services: Services | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._finished: anyio.Event | None = None
        self._closing = False
        self.scanner = ProcScanner()
        self.sampler = ResourceSampler(lambda: list(self._actors.values()))

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until `shutdown`; reports started through ``task_status`` once `add` may be called."""
        if self._services is not None:
            raise RuntimeError("engine is already running")
        pidfd.require()
        self._finished = anyio.Event()
        self._sweep_wanted, self._sweep_urgent = anyio.Event(), anyio.Event()
        self._closing = False
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                threads = anyio.CapacityLimiter(self._threads)
                # a thread of its own: stops wait on the scan, which must not queue behind their writes
                self.scanner.limiter = anyio.CapacityLimiter(1)
                self._services = Services(
                    store=self.store,
                    boot_id=self.boot_id,
                    scanner=self.scanner,
                    threads=threads,
                    request_sweep=self._request_sweep,
                    spawning=Crowd(size=1),
                    writing=Crowd(size=4),
                    emit=self._emit,
                    claims=self._claims,
                    batch=WriteBatch(threads),
                    port_checks=WriteBatch(threads),
                    spawns=WriteBatch(threads),
                    relocate=self._relocate,
                    journals=StopJournals(self.store.root, self.boot_id),
                )
                tg.start_soon(self._watch_logs, name="engine log rotation check")
                tg.start_soon(self._sweep_leftovers, name="engine leftover sweep")
                tg.start_soon(self.sampler.run, threads, name="engine resource sampler")
                tg.start_soon(self._services.liveness.run, name="engine liveness pass")
                task_status.started()
                await self._finished.wait()
                tg.cancel_scope.cancel()
        finally:
            if self._services is not None:
                self._services.sandboxes.close()  # the rulesets, and the spawn helper
            self._services = None
            self._task_group = None
            self._actors.clear()
            self._adopted.clear()

    async def shutdown(self) -> None:
        """Stop every process in parallel (each within its stop timeout), record them ``stopped`` with their
        desired state unchanged, then end `run`. Idempotent."""
        if self._services is None or self._finished is None or self._closing:
            return
        self._closing = True
        actors = list(self._actors.values())
        self._services.writing.surge(anyio.current_time(), _SURGE)
        for actor in actors:
            actor.close("shutdown")
        for actor in actors:
            await actor.done.wait()
        log.info("engine_stopped", instances=len(actors))
        self._finished.set()

    async def detach(self) -> None:
        """End `run` and leave every process running, recorded as it is, for the next engine to adopt
        (a daemon re-executing itself for an upgrade). Idempotent."""
        if self._services is None or self._finished is None or self._closing:
            return
        self._closing = True
        log.info("engine_detached", instances=len(self._actors))
        self._finished.set()

    # ------------------------------------------------------------------ membership

    async def add(self, runtime: InstanceRuntime, record: Instance | None = None) -> None:
        """Take the instance under supervision: adopt its live process, or apply its desired state.

        The instance must already exist in the store (`NotFound` otherwise). ``record``: the instance as the
        caller has just read it from the store, unwritten since, handed over (not read a second time).
        """
        services = self._running()
        key = runtime.instance_id
        if key in self._actors or key in self._adding:
            raise NameExists(f"instance {runtime.name} ({key}) is already supervised")
        self._adding.add(key)
        try:
            # else one small file, read on the loop: a fleet starting adds hundreds, one after another, and a
            # worker-thread round trip would cost each of them more than the read
            inst = record if record is not None and record.id == key else self.store.get(key)
            actor = Actor(runtime, inst, services)
            actor.prepare()
            self._actors[key] = actor
            if actor.proc is not None:
                self._adopted.add(key)
        finally:
            self._adding.discard(key)
        assert self._task_group is not None
        self._task_group.start_soon(supervise, actor, name=f"instance {runtime.name}")

    async def update(self, runtime: InstanceRuntime) -> Literal["restarted", "updated", "unchanged"]:
        """Apply new launch data or policies: a changed process fingerprint restarts that instance only;
        policy-only changes apply live."""
        actor = self._actor(runtime.instance_id)
        old = actor.runtime
        if old.process_fingerprint() != runtime.process_fingerprint():
            return "restarted" if actor.update(runtime, restart=True) else "updated"
        if old == runtime:
            return "unchanged"
        actor.update(runtime, restart=False)
        return "updated"

    async def remove(self, instance_id: str) -> None:
        """Stop the instance's process and stop supervising it; its files stay as they are."""
        actor = self._actor(instance_id)
        actor.close("remove")
        await actor.done.wait()
        self._actors.pop(instance_id, None)
        self._adopted.discard(instance_id)

    async def settled(self) -> Settled:
        """Wait until every instance supervised now has come to rest (adopted, started up to readiness,
        given up on or waiting to retry, or not wanted running), and say how many of each."""
        self._settling = Settling(lambda: self._actors, frozenset(self._adopted))
        try:
            return await self._settling.wait()
        finally:
            self._settling = None

    # ------------------------------------------------------------------ commands

    async def start(self, instance_id: str, *, wait: bool = False) -> Instance:
        """Want it running (until the next boot); ``wait`` until it is running, or failed."""
        actor = self._actor(instance_id)
        waiter = actor.start()
        await actor.persist()
        if wait and waiter is not None:
            await self._wait(waiter.event, self._start_bound(actor))
        return actor.snapshot()

    async def stop(self, instance_id: str, *, wait: bool = False) -> Instance:
        """Want it stopped (until the next boot); ``wait`` until the whole tree is gone, raising
        `StopIncomplete` when something outside it still holds the port."""
        actor = self._actor(instance_id)
        actor.stop_left = ""
        self._stops_in_flight += 1
        if self._stops_in_flight > 1 and self._services is not None:  # `stop --all`: many at once
            self._services.writing.surge(anyio.current_time(), _SURGE)
        try:
            return await self._stop(actor, wait=wait)
        finally:
            self._stops_in_flight -= 1

    async def _stop(self, actor: Actor, *, wait: bool) -> Instance:
        event = actor.stop()
        await actor.persist()
        if wait:
            await self._wait(event, self._stop_bound(actor))
            if actor.stop_left:
                raise StopIncomplete(f"{actor.runtime.name}: stopped, but {actor.stop_left}")
        return actor.snapshot()

    async def restart(self, instance_id: str, *, wait: bool = False) -> Instance:
        """Stop and start again now (restart count back to 0); ``wait`` until running, or failed."""
        actor = self._actor(instance_id)
        waiter = actor.restart()
        await actor.persist()
        if wait:
            await self._wait(waiter.event, self._stop_bound(actor) + self._start_bound(actor))
        return actor.snapshot()

    # ------------------------------------------------------------------ reading

    def get(self, instance_id: str) -> Instance:
        """The instance as the engine knows it now (health and last_seen included)."""
        return self._actor(instance_id).snapshot()

    def written(self, instance_id: str) -> Instance:
        """The instance as last written, shared rather than copied (a listing reads every one on each call):
        never to be changed; its last_seen may be older than `get`'s."""
        return self._actor(instance_id).record.written()

    def get_json(self, instance_id: str) -> dict[str, Any]:
        """``get(instance_id).to_json_dict()`` without a copy of the instance (a listing asks it only of an
        instance written anew since its last row)."""
        return self._actor(instance_id).record.written_json()

    def last_seen(self, instance_id: str) -> datetime | None:
        """`get`'s last_seen without a copy of the instance: a listing asks it of every instance."""
        return self._actor(instance_id).record.inst.last_seen

    def all_written(self) -> list[Instance]:
        """Every instance as last written, shared: never to be changed (see `written`)."""
        return [actor.record.written() for actor in self._actors.values()]

    async def reread(self, instance_id: str) -> None:
        """Show what the daemon wrote into ``instance.json`` beside the engine's fields (an agent's note)."""
        await self._actor(instance_id).persist()  # a write of the record re-reads the others' fields

    def resources(self, instance_id: str) -> ResourceSample | None:
        """What the instance's process tree used at its last sample (None: no process, or not sampled yet)."""
        return self.sampler.samples.get(instance_id)

    def probe_results(self, instance_id: str) -> dict[str, tuple[ProbeResult, datetime]]:
        """``readiness``/``liveness`` → the last result of that probe for the current process, and when."""
        return dict(self._actor(instance_id).probe_results)

    def instances(self) -> list[Instance]:
        return [actor.snapshot() for actor in self._actors.values()]

    def runtime(self, instance_id: str) -> InstanceRuntime:
        return self._actor(instance_id).runtime

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._actors

    # ------------------------------------------------------------------ internals

    def _running(self) -> Services:
        if self._services is None or self._closing:
            raise RuntimeError("engine is not running (call add() while run() is active)")
        return self._services

    def _actor(self, instance_id: str) -> Actor:
        try:
            return self._actors[instance_id]
        except KeyError:
            raise NotFound(f"instance {instance_id} is not supervised") from None

    @staticmethod
    def _start_bound(actor: Actor) -> float:
        rt = actor.runtime
        return rt.health.start_timeout + rt.stop_timeout + _KILL_AND_PORT_WAIT + _WAIT_MARGIN

    @staticmethod
    def _stop_bound(actor: Actor) -> float:
        return actor.runtime.stop_timeout + _KILL_AND_PORT_WAIT + _WAIT_MARGIN

    @staticmethod
    async def _wait(event: anyio.Event, bound: float) -> None:
        with anyio.move_on_after(bound if math.isfinite(bound) else None):
            await event.wait()

    def _emit(self, event: Event) -> None:
        if self._settling is not None:
            self._settling.noticed(event.instance_id)
        if self._on_event is not None:
            self._on_event(event)

    async def _watch_logs(self) -> None:
        """Look at log sizes when a look is due (see `LogChecks`): an idle fleet's quiet logs together."""
        checks = LogChecks(self._log_check_interval)
        interval = self._log_check_interval
        while True:
            now = anyio.current_time()
            live = [key for key, actor in self._actors.items() if actor.proc is not None]
            wait = checks.next_due(live, now) + interval / 2 - now  # due times are half a check early
            await anyio.sleep(min(max(wait, interval / 2), interval * QUIET_CHECKS))
            now = anyio.current_time()
            checks.keep_only(set(self._actors))
            for actor in list(self._actors.values()):
                if actor.proc is None or not checks.over_limit(actor.runtime, now):
                    continue
                if actor.log_needs_rotation():
                    await actor.rotate_log()

    def _request_sweep(self, instance_id: str, urgent: bool) -> None:
        self._sweep_pending[instance_id] = procfs.uptime_ticks()
        assert self._sweep_wanted is not None and self._sweep_urgent is not None
        self._sweep_wanted.set()
        if urgent:
            self._sweep_urgent.set()

    async def _sweep_leftovers(self) -> None:
        """After unplanned exits, end what those processes left behind: at once when their process group
        still has members, otherwise within ``sweep_delay`` — batched, so that one /proc scan serves every
        instance that crashed meanwhile and none of it delays a respawn."""
        while True:
            assert self._sweep_wanted is not None and self._sweep_urgent is not None
            await self._sweep_wanted.wait()
            with anyio.move_on_after(self._sweep_delay):
                await self._sweep_urgent.wait()
            self._sweep_wanted, self._sweep_urgent = anyio.Event(), anyio.Event()
            pending, self._sweep_pending = self._sweep_pending, {}
            async with anyio.create_task_group() as tg:
                for instance_id, exited in pending.items():
                    if (actor := self._actors.get(instance_id)) is not None:
                        tg.start_soon(actor.sweep_leftovers, exited)
