"""One actor per instance: it alone spawns, probes, restarts and stops that instance's process.

The actor runs one loop in the engine's task group. Commands (`start`, `stop`, `restart`, `update`,
`close`) only change what the actor wants and wake or interrupt it; the loop does the work, so every action
on one instance happens in order. Every status change goes through the state table, is written to
``instance.json`` (in order; not fsynced: runtime state, see docs/layout.md) before the next action, then
emitted as an `Event` and a log line.
"""

from __future__ import annotations

import functools
import math
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import structlog

from supervisor.engine import _procfs, probes
from supervisor.engine._ports import holder_pid
from supervisor.engine._redact import redact_cmdline, secret_values
from supervisor.engine.events import Event
from supervisor.engine.logfile import LogCursor, rotate
from supervisor.engine.process import AdoptedProcess, ExitStatus, ProcessHandle, reap_recorded, spawn
from supervisor.engine.restart import decide
from supervisor.engine.runtime import InstanceRuntime
from supervisor.engine.states import ACTIVE, SETTLED, check_transition
from supervisor.engine.stop import ProcScanner, stop_tree
from supervisor.errors import EyrieError, StartFailed
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import DesiredState, HealthStatus, Instance, InstanceStatus, LastExit, utcnow
from supervisor.ports import port_holder, port_in_use
from supervisor.store import Store

__all__ = ["OWNED_FIELDS", "Actor", "Crowd", "Services"]

log = structlog.get_logger("supervisor.engine")

T = TypeVar("T")

OWNED_FIELDS = (
    "status",
    "status_updated_at",
    "status_detail",
    "pid",
    "pgid",
    "proc_start_time",
    "boot_id",
    "cmdline",
    "started_at",
    "last_exit",
    "last_error",
    "next_start_at",
    "restart_count",
    "total_restarts",
    "health_status",
    "last_seen",
    "config_hash",
    "desired",
    "desired_boot_id",
)
"""The fields of ``instance.json`` the engine owns; every write copies them from memory."""

_READY_POLL_FIRST = 0.02
_READY_POLL_MAX = 0.5
_LAST_SEEN_SAVE_EVERY = 60.0
_SLOW_STOP = 0.5
_CHILD_ENV_DROP = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)

_STARTING, _RUNNING, _STOPPED, _ERROR = (
    InstanceStatus.STARTING,
    InstanceStatus.RUNNING,
    InstanceStatus.STOPPED,
    InstanceStatus.ERROR,
)


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


@dataclass(slots=True)
class Crowd:
    """Chooses where a short blocking call (a fork/exec, a state write) runs. A lone call (a respawn,
    typically) is quicker on the event loop than a round trip through a worker thread, which costs two
    wake-ups that a busy machine can delay by milliseconds; calls that come in a crowd (a fleet starting)
    run in worker threads, in parallel, and keep the loop free. More than ``size`` calls within ``window``
    seconds make a crowd."""

    size: int = 1
    window: float = 0.01
    recent: deque[float] = field(default_factory=deque)

    def crowded(self, now: float) -> bool:
        recent = self.recent
        while recent and now - recent[0] >= self.window:
            recent.popleft()
        recent.append(now)
        return len(recent) > self.size


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one run of the process ended."""

    exit: ExitStatus | None
    failed: bool
    reason: str


class _StartWaiter:
    """Set by the outcome (running, backing off, failed) of the first start attempt numbered ``attempt`` or
    later — not by a stop that happens on the way, such as the one a restart begins with."""

    __slots__ = ("attempt", "event")

    def __init__(self, attempt: int) -> None:
        self.event = anyio.Event()
        self.attempt = attempt


class Actor:
    """Supervises one instance. Built by `Engine.add`; its `run` lives in the engine's task group."""

    def __init__(self, runtime: InstanceRuntime, inst: Instance, services: Services) -> None:
        self.runtime = runtime
        self._log_file = os.fspath(runtime.log_path)
        self.inst = inst
        self._view = inst.model_copy()
        self.services = services
        self.proc: ProcessHandle | None = None
        self.desired: DesiredState = "stopped"
        self.done = anyio.Event()
        self._cursor: LogCursor | None = None
        self._spawned_at = 0.0
        self._closing: Literal["remove", "shutdown"] | None = None
        self._restart_requested = False
        self._hold = False
        self._commands = 0
        self._waiting = False
        self._woken = False
        self._wake = anyio.Event()
        self._phase: anyio.CancelScope | None = None
        self._start_waiters: list[_StartWaiter] = []
        self._attempt_no = 0
        self._in_attempt = False
        self._stop_waiters: list[anyio.Event] = []
        self._log_lock = anyio.Lock()
        self._pending: _Outcome | None = None
        self._found_dead = False
        self._dead_exit: ExitStatus | None = None
        self._rebooted = False
        self._resume_at: datetime | None = None
        self._resume_cooldown = False
        self._write_lock = anyio.Lock()
        self._dirty = 0
        self._written = 0
        self._log = log.bind(
            instance=runtime.name, instance_id=runtime.instance_id, framework=runtime.framework
        )

    # ------------------------------------------------------------------ setup

    def prepare(self) -> None:
        """Decide, from what ``instance.json`` recorded, what to adopt and what is wanted now."""
        inst, rt, boot = self.inst, self.runtime, self.services.boot_id
        same_boot = inst.desired_boot_id == boot
        if same_boot and inst.desired is not None:
            self.desired = inst.desired
        else:
            self.desired = "running" if rt.autostart else "stopped"
        inst.desired = self.desired
        inst.desired_boot_id = boot
        if inst.status in ACTIVE:
            if inst.boot_id == boot:
                if inst.pid:
                    self.proc = AdoptedProcess.adopt(
                        inst.pid,
                        start_time=inst.proc_start_time or 0.0,
                        cmdline=inst.cmdline or [],
                        marker=rt.instance_id,
                        same_cmdline=self._same_cmdline,
                    )
                self._found_dead = self.proc is None
                if self._found_dead and inst.pid:
                    self._dead_exit = reap_recorded(inst.pid, inst.proc_start_time or 0.0)
            else:
                self._rebooted = True
        if not same_boot:
            inst.restart_count = 0
            inst.next_start_at = None
        elif inst.status in (_STOPPED, _ERROR) and inst.next_start_at is not None:
            self._resume_at = inst.next_start_at
            self._resume_cooldown = inst.status is _ERROR
        elif inst.status is _ERROR:
            self._hold = True
        self._view = inst.model_copy()  # what it wants now shows at once; the actor writes it first thing

    def _same_cmdline(self, current: Any, recorded: Any) -> bool:
        return _same_program(self._redact(current), list(recorded))

    def _redact(self, cmdline: Any) -> list[str]:
        return redact_cmdline(cmdline, secret_values(self.runtime.env))

    # ------------------------------------------------------------------ commands (called by the engine)

    def start(self) -> _StartWaiter | None:
        """Want it running now; an explicit start forgets past crashes. None when it already runs."""
        self._set_desired("running")
        self._hold = False
        self.inst.restart_count = 0
        self._settle_stop_waiters()
        if self.inst.status is _RUNNING and self.proc is not None:
            return None
        waiter = _StartWaiter(self._attempt_no if self._in_attempt else self._attempt_no + 1)
        self._start_waiters.append(waiter)
        if self._waiting and self._phase is not None:
            self._phase.cancel()
        self._poke()
        return waiter

    def stop(self) -> anyio.Event:
        self._set_desired("stopped")
        waiter = anyio.Event()
        self._stop_waiters.append(waiter)
        if self._phase is not None:
            self._phase.cancel()
        self._poke()
        return waiter

    def restart(self) -> _StartWaiter:
        self._set_desired("running")
        self._hold = False
        self.inst.restart_count = 0
        self._settle_stop_waiters()
        self._request_restart()
        current = self._in_attempt and not self._restart_requested
        waiter = _StartWaiter(self._attempt_no if current else self._attempt_no + 1)
        self._start_waiters.append(waiter)
        return waiter

    def update(self, runtime: InstanceRuntime, *, restart: bool) -> bool:
        """Swap in new launch data / policies; restart the process when asked and one is up. True if so."""
        self.runtime = runtime
        self._log_file = os.fspath(runtime.log_path)
        self._log = log.bind(
            instance=runtime.name, instance_id=runtime.instance_id, framework=runtime.framework
        )
        if restart and (self.proc is not None or self.inst.status in ACTIVE):
            self._request_restart()
            return True
        return False

    def close(self, mode: Literal["remove", "shutdown"]) -> None:
        self._closing = mode
        if self._phase is not None:
            self._phase.cancel()
        self._poke()

    def _request_restart(self) -> None:
        if self.proc is not None or self.inst.status in ACTIVE:
            self._restart_requested = True
            if self._phase is not None:
                self._phase.cancel()
        elif self._waiting and self._phase is not None:
            self._phase.cancel()
        self._poke()

    def _set_desired(self, desired: DesiredState) -> None:
        self.desired = desired
        self.inst.desired = desired
        self.inst.desired_boot_id = self.services.boot_id

    def _poke(self) -> None:
        self._commands += 1
        self._woken = True
        self._wake.set()

    async def _wait_wake(self) -> None:
        if not self._woken:
            self._wake = anyio.Event()
            await self._wake.wait()
        self._woken = False

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._main()
                    return
                except Exception as exc:  # a bug must not take the engine or other instances down
                    self._log.exception("instance_internal_error", pid=self.inst.pid)
                    await self._internal_error(exc)
                    if self._closing is not None:
                        return
                    self._hold = True
                    await self._wait_wake()
        finally:
            if self.proc is not None:  # detached or cancelled: the process lives on, to be adopted
                self.proc.release()
            for waiter in self._start_waiters:
                waiter.event.set()
            for event in self._stop_waiters:
                event.set()
            self.done.set()

    async def _main(self) -> None:
        await self._recover()
        while True:
            if self._closing is not None:
                reason = "supervisor shut down" if self._closing == "shutdown" else "removed from supervision"
                await self._halt(reason)
                self._settle_stop_waiters()
                return
            if self._restart_requested:
                self._restart_requested = False
                await self._halt("restarting")
            if self.desired == "running" and not self._hold:
                commands = self._commands
                with anyio.CancelScope() as scope:
                    self._phase = scope
                    try:
                        await self._supervise()
                    finally:
                        self._phase = None
                        self._waiting = False
                if not scope.cancel_called and commands == self._commands:
                    self._hold = True  # gave up or completed, and nobody asked otherwise since: wait
                continue
            await self._halt("stopped by request" if self.desired == "stopped" else None)
            self._settle_stop_waiters()
            await self._wait_wake()

    async def _recover(self) -> None:
        """First thing: save what `prepare` decided and clean up after a process that did not survive."""
        if self.proc is not None:
            self._cursor = LogCursor(self.runtime.log_path)
            self._spawned_at = anyio.current_time()
            self.proc.send_signal(signal.SIGCONT)  # in case a rotation had it paused when we went down
            self.inst.status_detail = f"adopted pid {self.proc.pid}"
            self._log.info("adopted", pid=self.proc.pid)
            await self._persist()
            self._emit("transition", self.inst.status, self.inst.status, self.inst.status_detail)
        elif self._found_dead or self._rebooted:
            found_dead, self._found_dead, self._rebooted = self._found_dead, False, False
            await self._sweep(pgid=self.inst.pgid, before=None)
            reason = "exited while the supervisor was not running" if found_dead else "system restarted"
            ended = self._dead_exit or ExitStatus()
            if found_dead:
                self.inst.last_exit = LastExit(code=ended.code, signal=ended.signal, time=utcnow())
            self._clear_process_fields()
            if found_dead and self.desired == "running":
                self._pending = _Outcome(
                    exit=ended, failed=ended.failed, reason=f"{reason} ({ended.describe()})"
                )
            else:
                await self._transition(_STOPPED, reason)
        else:
            # a process spawned just before a daemon crash, never recorded, must not run twice
            await self._sweep(pgid=None, before=None)
            if self.desired != "running" or self._hold or self._resume_at is not None:
                await self._persist()  # otherwise the first start writes it all in one go

    async def _supervise(self) -> None:
        """Run, and restart through the policy, until stopped (cancelled) or the policy gives up."""
        if self._resume_at is not None:
            at, cooldown = self._resume_at, self._resume_cooldown
            self._resume_at = None
            await self._sleep((at - utcnow()).total_seconds())
            if cooldown:
                self.inst.restart_count = 0
                self.inst.total_restarts += 1
        outcome, self._pending = self._pending, None
        while True:
            try:
                if outcome is None:
                    self._attempt_no += 1
                    self._in_attempt = True
                    outcome = await self._attempt()
                delay, cooldown = await self._decide(outcome)
            finally:
                self._in_attempt = False
            outcome = None
            if delay is None:
                return
            await self._sleep(delay)
            if cooldown:
                self.inst.restart_count = 0
                self.inst.total_restarts += 1

    async def _sleep(self, seconds: float) -> None:
        self._waiting = True
        try:
            await anyio.sleep(max(seconds, 0.0))
        finally:
            self._waiting = False

    async def _decide(self, outcome: _Outcome) -> tuple[float | None, bool]:
        """After the process ended: back off and retry, give up in ``error``, or stay stopped."""
        inst = self.inst
        d = decide(
            self.runtime.restart,
            restart_count=inst.restart_count,
            total_restarts=inst.total_restarts,
            failed=outcome.failed,
            reason=outcome.reason,
        )
        changes: dict[str, Any] = {
            "restart_count": d.restart_count,
            "total_restarts": d.total_restarts,
            "next_start_at": utcnow() + timedelta(seconds=d.delay) if d.delay is not None else None,
        }
        if d.last_error is not None:
            changes["last_error"] = d.last_error
        if d.completed:
            self._set_desired("stopped")
        await self._transition(d.status, d.detail, **changes)
        return d.delay, d.new_round

    async def _attempt(self) -> _Outcome:
        """Spawn (unless adopted), wait for readiness, then watch liveness until the process ends."""
        if self.proc is None:
            try:
                proc = await self._launch()
            except StartFailed as exc:
                self._log.warning("start_failed", error=str(exc))
                return _Outcome(exit=None, failed=True, reason=str(exc))
            self.proc = proc
            rt = self.runtime
            spawned: dict[str, Any] = {
                "pid": proc.pid,
                "pgid": proc.pgid,
                "proc_start_time": proc.start_time,
                "boot_id": self.services.boot_id,
                "cmdline": self._redact(proc.cmdline),
                "started_at": utcnow(),
                "next_start_at": None,
                "config_hash": rt.config_hash,
            }
            if _ready_at_spawn(rt.ready) and proc.alive():
                # nothing to wait for: record the process as running in the same write that records it
                detail = f"process {proc.pid} started"
                await self._transition(
                    _RUNNING,
                    detail,
                    via=_STARTING,
                    health_status=HealthStatus.HEALTHY,
                    last_seen=utcnow(),
                    **spawned,
                )
            else:
                await self._transition(
                    _STARTING, "waiting for readiness", health_status=HealthStatus.UNKNOWN, **spawned
                )
        proc = self.proc
        if self.inst.status is not _RUNNING:
            ready = await self._race(proc, self._readiness)
            if isinstance(ready, ExitStatus):
                return self._exited(proc, ready)
            if not ready.ok:
                await self._stop_process(proc)
                return _Outcome(exit=proc.exit_status, failed=True, reason=ready.detail)
            await self._transition(
                _RUNNING, ready.detail, health_status=HealthStatus.HEALTHY, last_seen=utcnow()
            )
        live = await self._race(proc, self._liveness)
        if isinstance(live, ExitStatus):
            return self._exited(proc, live)
        self.inst.status_detail = f"restarting: {live.detail}"
        await self._stop_process(proc)
        return _Outcome(exit=proc.exit_status, failed=True, reason=live.detail)

    async def _race(self, proc: ProcessHandle, body: Callable[[], Awaitable[T]]) -> T | ExitStatus:
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

    def _exited(self, proc: ProcessHandle, status: ExitStatus) -> _Outcome:
        """The process ended on its own: note it and sweep up what it left behind, in the background."""
        self.proc = None
        self._cursor = None
        _assign(self.inst, last_exit=LastExit(code=status.code, signal=status.signal, time=utcnow()))
        self._clear_process_fields()
        self._log.warning("process_exited", pid=proc.pid, exit=status.describe())
        self.services.request_sweep(self.runtime.instance_id, _group_alive(proc.pgid))
        return _Outcome(exit=status, failed=status.failed, reason=status.describe())

    # ------------------------------------------------------------------ starting

    def child_env(self) -> dict[str, str]:
        """The child's complete environment: ours (minus systemd's notify/socket variables), the runtime's
        additions, and the instance's identity (``EYRIE_INSTANCE_ID`` marks every process of its tree)."""
        rt = self.runtime
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
        env.update(rt.env)
        env[_procfs.MARKER_VAR] = rt.instance_id
        env["EYRIE_INSTANCE_NAME"] = rt.name
        env["EYRIE_PORT"] = str(rt.port)
        return env

    async def _launch(self) -> ProcessHandle:
        rt = self.runtime
        await self._check_port()
        offset = _size(rt.log_path)
        if offset >= rt.logs.max_bytes:
            await self._rotate()
            offset = _size(rt.log_path)
        start = functools.partial(spawn, rt.argv, env=self.child_env(), cwd=rt.cwd, log_path=rt.log_path)
        if self.services.spawning.crowded(anyio.current_time()):
            proc = await anyio.to_thread.run_sync(start, limiter=self.services.threads)
        else:
            proc = start()
        self._cursor = LogCursor(rt.log_path, offset)
        self._spawned_at = anyio.current_time()
        return proc

    async def _check_port(self) -> None:
        """Refuse to spawn onto a port a stranger holds; clear our own leftovers off it first."""
        port = self.runtime.port
        if not port or not port_in_use(port):
            return
        pid = await anyio.to_thread.run_sync(holder_pid, port, limiter=self.services.threads)
        if pid is not None and _procfs.read_marker(pid) == self.runtime.instance_id:
            self._log.warning("port_held_by_leftover", port=port, holder=pid)
            await self._sweep(pgid=None, before=_procfs.uptime_ticks())
            if not port_in_use(port):
                return
        holder = await anyio.to_thread.run_sync(port_holder, port, limiter=self.services.threads)
        raise StartFailed(f"port {port} is held by {holder or 'another process'}")

    async def _readiness(self) -> probes.ProbeResult:
        rt = self.runtime
        last = probes.ProbeResult(False, "no probe has run yet")
        poll = _READY_POLL_FIRST
        left = self._spawned_at + rt.health.start_timeout - anyio.current_time()
        with anyio.move_on_after(max(left, 0.0)):
            while True:
                last = await self._check(rt.ready)
                if last.ok:
                    return last
                await anyio.sleep(poll)
                poll = min(poll * 1.5, _READY_POLL_MAX)
        return probes.ProbeResult(False, f"not ready after {rt.health.start_timeout:g}s: {last.detail}")

    async def _check(self, probe: Probe) -> probes.ProbeResult:
        rt = self.runtime
        assert self.proc is not None
        ctx = probes.ProbeContext(
            port=rt.port,
            process=self.proc,
            timeout=rt.health.timeout,
            instance_id=rt.instance_id,
            name=rt.name,
            cwd=rt.cwd,
            env=self.child_env() if probe.kind == ProbeKind.EXEC else None,
            log=self._cursor,
        )
        if probe.kind != ProbeKind.LOG:
            return await probes.check(probe, ctx)
        async with self._log_lock:  # a rotation moves the bytes this probe reads
            return await probes.check(probe, ctx)

    # ------------------------------------------------------------------ running

    async def _liveness(self) -> probes.ProbeResult:
        """Until liveness fails ``failure_threshold`` times in a row; meanwhile keep health, the restart
        count reset and log rotation current."""
        running_since = anyio.current_time()
        next_live = _on_grid(running_since + self.runtime.health.interval, self.runtime.health.interval)
        seen_saved = running_since
        failures = 0
        while True:
            rt = self.runtime
            wake = []
            if rt.live is not None:
                wake.append(next_live)
            if self.inst.restart_count > 0:
                wake.append(running_since + rt.restart.reset_after)
            if wake:
                await anyio.sleep(max(min(wake) - anyio.current_time(), 0.0))
            else:
                await anyio.sleep_forever()
            now = anyio.current_time()
            if (
                self.inst.restart_count > 0
                and now - running_since >= rt.restart.reset_after
                and self.inst.health_status is not HealthStatus.UNHEALTHY
            ):
                self.inst.restart_count = 0
                self._log.info("restart_count_reset", pid=self.inst.pid)
                await self._persist()
            if rt.live is None or now < next_live:
                continue
            result = await self._check(rt.live)
            next_live = _on_grid(anyio.current_time() + rt.health.interval, rt.health.interval)
            if result.ok:
                failures = 0
                self.inst.last_seen = utcnow()
                if self.inst.health_status is not HealthStatus.HEALTHY:
                    await self._health(HealthStatus.HEALTHY, result.detail)
                elif now - seen_saved >= max(_LAST_SEEN_SAVE_EVERY, rt.health.interval):
                    seen_saved = now
                    await self._persist()
                continue
            failures += 1
            if self.inst.health_status is not HealthStatus.UNHEALTHY:
                await self._health(HealthStatus.UNHEALTHY, result.detail)
            if failures >= rt.health.failure_threshold:
                return probes.ProbeResult(False, f"liveness failed {failures} times: {result.detail}")

    async def _health(self, status: HealthStatus, detail: str) -> None:
        self.inst.health_status = status
        await self._persist()
        self._emit("health", self.inst.status, self.inst.status, detail, health_status=status.value)

    async def rotate_log(self) -> None:
        """Rotate the running instance's log now (the engine's periodic size check calls this)."""
        async with self._log_lock:
            if self.proc is not None and self.inst.status is _RUNNING:
                await self._rotate()

    async def _rotate(self) -> None:
        rt, proc = self.runtime, self.proc
        main = (proc.pid, proc.start_ticks) if proc is not None else None
        pgid = proc.pgid if proc is not None else None

        def members() -> dict[int, int]:
            table = _procfs.scan()
            pids = _procfs.tree_members(table, marker=rt.instance_id, main=main, pgid=pgid)
            return {pid: table[pid].start_ticks for pid in pids}

        try:
            result = await anyio.to_thread.run_sync(
                rotate, rt.log_path, rt.logs, members, limiter=self.services.threads
            )
        except OSError as exc:
            self._log.error("log_rotation_failed", path=str(rt.log_path), error=exc.strerror or str(exc))
            return
        if result is None:
            return
        if self._cursor is not None:
            self._cursor.rotated(result.backup, result.size)
        self._log.info(
            "log_rotated",
            pid=self.inst.pid,
            bytes=result.size,
            paused_processes=result.frozen,
            paused_ms=round(result.paused * 1000, 2),
        )

    # ------------------------------------------------------------------ stopping

    async def _halt(self, reason: str | None) -> None:
        """Make sure no process runs and the recorded status says so."""
        if self.proc is not None:
            await self._stop_process(self.proc)
        status = self.inst.status
        if reason is None:
            return
        if status in ACTIVE:
            await self._transition(_STOPPED, reason)
        elif self._closing == "shutdown":
            await self._persist()  # a backoff or cooldown resumes at the next start
        elif status is _ERROR or (status is _STOPPED and self.inst.next_start_at is not None):
            await self._transition(_STOPPED, reason, next_start_at=None)

    async def _stop_process(self, proc: ProcessHandle) -> None:
        rt = self.runtime
        if self.inst.status in ACTIVE and not self.inst.status_detail.startswith("restarting"):
            self.inst.status_detail = "stopping"
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._record_slow_stop)
                result = await stop_tree(
                    marker=rt.instance_id,
                    main=proc,
                    pgid=proc.pgid,
                    stop_signal=rt.stop_signal,
                    stop_timeout=rt.stop_timeout,
                    port=rt.port or None,
                    scanner=self.services.scanner,
                )
                tg.cancel_scope.cancel()
        self.proc = None
        self._cursor = None
        status = proc.exit_status
        self.inst.last_exit = LastExit(
            code=status.code if status else None, signal=status.signal if status else None, time=utcnow()
        )
        self._clear_process_fields()
        self._log.info(
            "stopped",
            pid=proc.pid,
            killed=result.killed,
            seconds=round(result.seconds, 3),
            exit=status.describe() if status else "unknown",
        )
        if not result.port_free:
            self.inst.last_error = result.detail
            self._log.warning("port_not_freed", detail=result.detail)

    async def _record_slow_stop(self) -> None:
        """Most stops take milliseconds; one that takes longer shows "stopping" in instance.json meanwhile."""
        await anyio.sleep(_SLOW_STOP)
        await self._persist()

    async def _sweep(self, *, pgid: int | None, before: int | None) -> None:
        """End leftovers of an earlier run of this instance (processes carrying its marker)."""
        result = await stop_tree(
            marker=self.runtime.instance_id,
            main=None,
            pgid=pgid,
            stop_signal=self.runtime.stop_signal,
            stop_timeout=self.runtime.stop_timeout,
            port=None,
            scanner=self.services.scanner,
            started_before=before,
        )
        if result.signalled or result.killed:
            self._log.info("leftovers_stopped", processes=result.signalled, killed=result.killed)

    async def sweep_leftovers(self) -> None:
        """End processes of earlier runs that outlived them (never the current run's, which started later)."""
        before = self.proc.start_ticks - 1 if self.proc is not None else _procfs.uptime_ticks()
        try:
            await self._sweep(pgid=None, before=before)
        except Exception:
            self._log.exception("leftover_sweep_failed")

    def _clear_process_fields(self) -> None:
        _assign(self.inst, pid=None, pgid=None, proc_start_time=None, cmdline=None, health_status=None)

    # ------------------------------------------------------------------ recording

    async def _transition(
        self, new: InstanceStatus, detail: str, *, via: InstanceStatus | None = None, **changes: Any
    ) -> None:
        """Move to ``new`` (through ``via`` first, recorded in the same write), persist, then announce."""
        old = self.inst.status
        if via is not None:
            check_transition(old, via)
            check_transition(via, new)
        else:
            check_transition(old, new)
        _assign(self.inst, **changes, status=new, status_detail=detail, status_updated_at=utcnow())
        await self._persist()
        if via is not None:
            self._emit("transition", old, via, "spawned")
            old = via
        self._emit("transition", old, new, detail)
        if new in SETTLED and self._in_attempt:
            keep = []
            for waiter in self._start_waiters:
                if waiter.attempt <= self._attempt_no:
                    waiter.event.set()
                else:
                    keep.append(waiter)
            self._start_waiters = keep

    def _settle_stop_waiters(self) -> None:
        for event in self._stop_waiters:
            event.set()
        self._stop_waiters = []

    async def persist(self) -> None:
        await self._persist()

    async def _persist(self) -> None:
        """Write the owned fields to ``instance.json``; concurrent calls coalesce, order is kept."""
        self._dirty += 1
        mine = self._dirty
        async with self._write_lock:
            if self._written >= mine:
                return
            target = self._dirty
            snapshot = {key: getattr(self.inst, key) for key in OWNED_FIELDS}
            try:
                disk = await self._store(snapshot)
            except (OSError, EyrieError) as exc:
                self._log.error("state_not_saved", error=str(exc))
                self._view = self.inst.model_copy()  # memory stays the truth until a write succeeds
                return
            except BaseException:
                self._view = self.inst.model_copy()
                raise
            self._written = target
            self._view = disk
            current = {key: getattr(self.inst, key) for key in OWNED_FIELDS}
            self.inst = disk.model_copy(update=current)

    async def _store(self, snapshot: dict[str, Any]) -> Instance:
        """Write on the loop when the write is a lone one and nobody else holds the instance's lock (a
        fraction of a millisecond); otherwise in a worker thread."""
        if not self.services.writing.crowded(anyio.current_time()):
            try:
                return self._write(snapshot, wait=False)
            except BlockingIOError:  # another process is writing this instance: wait for it off the loop
                pass
        return await anyio.to_thread.run_sync(self._write, snapshot, True, limiter=self.services.threads)

    def _write(self, snapshot: dict[str, Any], wait: bool) -> Instance:
        def apply(inst: Instance) -> None:
            # the values come from our own instance, already valid
            _assign(inst, **{key: value for key, value in snapshot.items() if inst.__dict__[key] != value})

        # Runtime state only: after a power loss the boot id changes and `prepare` discards it anyway, so the
        # write is atomic but not fsynced (see docs/layout.md).
        return self.services.store.update(self.runtime.instance_id, apply, durable=False, wait=wait)

    def _emit(self, kind: str, old: InstanceStatus, new: InstanceStatus, detail: str, **data: Any) -> None:
        rt = self.runtime
        pid = self.inst.pid
        if kind == "transition":
            self._log.info(kind, pid=pid, from_status=old.value, to_status=new.value, detail=detail)
        else:
            self._log.info(kind, pid=pid, status=new.value, detail=detail, **data)
        event = Event(
            time=utcnow(),
            event=kind,
            instance=rt.name,
            instance_id=rt.instance_id,
            framework=rt.framework,
            pid=pid,
            from_status=old.value,
            to_status=new.value,
            detail=detail,
            data={"restart_count": self.inst.restart_count, **data},
        )
        try:
            self.services.emit(event)
        except Exception:
            self._log.exception("event_subscriber_failed")

    async def _internal_error(self, exc: Exception) -> None:
        message = f"internal error: {type(exc).__name__}: {exc}"
        old = self.inst.status
        try:
            if self.proc is not None:
                await self._stop_process(self.proc)
        except Exception:
            self._log.exception("internal_error_stop_failed")
            self.proc = None
        self.inst.status = _ERROR
        self.inst.status_detail = "internal error"
        self.inst.last_error = message
        self.inst.status_updated_at = utcnow()
        try:
            await self._persist()
        except Exception:
            self._log.exception("state_not_saved")
        self._emit("transition", old, _ERROR, message)

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> Instance:
        """The state last written to ``instance.json`` (what others can read), with the current last_seen."""
        return self._view.model_copy(update={"last_seen": self.inst.last_seen})

    def log_needs_rotation(self) -> bool:
        if self.proc is None or self.inst.status is not _RUNNING:
            return False
        try:
            return os.stat(self._log_file).st_size >= self.runtime.logs.max_bytes
        except OSError:
            return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _assign(inst: Instance, **values: Any) -> None:
    """Set fields the engine owns to values it built with their declared types (or copied from a valid
    instance), without pydantic's assignment validation: that re-validates per field and was a fifth of the
    CPU of a respawn. A value of the wrong type still shows: serialising it warns."""
    inst.__dict__.update(values)
    inst.__pydantic_fields_set__.update(values)


def _same_program(current: list[str], recorded: list[str]) -> bool:
    """Whether a running command line is the argv recorded at spawn. A script shows up behind its
    interpreter (``#!`` line, or ``env`` running one): ``python /venv/bin/hermes serve …`` for the recorded
    ``hermes serve …``, so the recorded arguments must end it and the program's name appear before them."""
    if current == recorded:
        return True
    if not recorded or len(current) <= len(recorded):
        return False
    tail = recorded[1:]
    if current[len(current) - len(tail) :] != tail:
        return False
    name = os.path.basename(recorded[0])
    return any(os.path.basename(part) == name for part in current[: len(current) - len(tail)])


def _ready_at_spawn(probe: Probe) -> bool:
    """A readiness probe that any live process passes at once."""
    return probe.kind == ProbeKind.PROCESS and probe.seconds <= 0


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has members (one cheap signal-0, no /proc scan)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_TICK_GRID = 0.5


def _on_grid(when: float, interval: float) -> float:
    """Round a probe time up onto a grid shared by every instance (a twentieth of the interval, at most
    0.5 s), so that the probes of many instances wake the event loop once, not once each."""
    grid = min(_TICK_GRID, interval / 20) or interval
    return math.ceil(when / grid) * grid if grid > 0 else when
