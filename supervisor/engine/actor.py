"""One actor per instance: it alone spawns, probes, restarts and stops that instance's process.

The actor runs one loop in the engine's task group. Commands (`start`, `stop`, `restart`, `update`,
`close`) only change what the actor wants and wake or interrupt it; the loop does the work, so every action
on one instance happens in order. What the loop is doing is its `Phase`, moved through the phase table; every
status change goes through the state table, is written to ``instance.json`` (in order; not fsynced: runtime
state, see docs/layout.md) with the phase before the next action, then emitted as an `Event` and a log line.
One exception keeps a crash-to-respawn short: a restart without delay writes the crash together with the new
process, after its exec; a daemon that dies in between finds the record naming the dead process, and ends the
unrecorded one by its marker before starting again (`_recover`). What is said about the crash (the log line,
the instance log's lines) and the request to sweep its leftovers also wait until that exec (`_say`).
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio
from anyio.lowlevel import checkpoint_if_cancelled

from supervisor.engine import procfs
from supervisor.engine._announce import announce, bound_log
from supervisor.engine._launch import check_port, relocate, spawn_child, spawned_fields
from supervisor.engine._logs import InstanceLog
from supervisor.engine._record import OWNED_FIELDS, InstanceRecord, assign
from supervisor.engine._services import Crowd, Services
from supervisor.engine._sparse import SparseEvent
from supervisor.engine._stopping import group_alive, stop_line, stop_run, sweep
from supervisor.engine._takeover import take_over
from supervisor.engine._waiters import Doorbell, StartWaiter, Waiters
from supervisor.engine._watch import Watch, race, race_liveness, ready_at_spawn
from supervisor.engine.logfile import LogCursor
from supervisor.engine.probes import ProbeResult
from supervisor.engine.process import ExitStatus, ProcessHandle
from supervisor.engine.recovery import RecoveryPlan, Resume
from supervisor.engine.resources import LimitWatch
from supervisor.engine.restart import Decision, decide
from supervisor.engine.runtime import InstanceRuntime
from supervisor.engine.states import ACTIVE, SETTLED, Phase, check_phase_move, check_transition
from supervisor.errors import StartFailed
from supervisor.models import DesiredState, HealthStatus, Instance, InstanceStatus, utcnow

__all__ = ["OWNED_FIELDS", "Actor", "Crowd", "Services"]

_STARTING, _RUNNING = InstanceStatus.STARTING, InstanceStatus.RUNNING
_STOPPED, _ERROR = InstanceStatus.STOPPED, InstanceStatus.ERROR


@dataclass(slots=True, eq=False)
class _Outcome:
    """How one run of the process ended."""

    exit: ExitStatus | None  # None: it never started
    failed: bool
    reason: str


class Actor:
    """Supervises one instance. Built by `Engine.add`; its `run` lives in the engine's task group."""

    def __init__(self, runtime: InstanceRuntime, inst: Instance, services: Services) -> None:
        self.runtime = runtime
        self.services = services
        self.proc: ProcessHandle | None = None
        self.stop_left = ""
        """What the last stop could not end (a port still held, and by whom); "" when it ended everything."""
        self.desired: DesiredState = "stopped"
        self.phase = Phase.IDLE
        self.done = SparseEvent()
        self.logs = InstanceLog()
        self.limits = LimitWatch()  # the resource sampler trips it when the tree stays over its memory limit
        self.probe_results: dict[str, tuple[ProbeResult, datetime]] = {}
        self.log = bound_log(runtime)
        self._record = InstanceRecord(inst, runtime.instance_id, services, self.log)
        self._spawned_at = 0.0
        self._plan: RecoveryPlan | None = None
        self._resume: Resume | None = None
        self._pending: _Outcome | None = None
        self._closing: Literal["remove", "shutdown"] | None = None
        self._restart_requested = False
        self._commands = 0
        self._doorbell = Doorbell()
        self._scope: anyio.CancelScope | None = None  # the current supervision: a command cancels it
        self._sleeping = False  # in a backoff or cooldown wait, which a start cuts short
        self._waiters = Waiters()
        self._unwritten: list[tuple[Instance, InstanceStatus, InstanceStatus, str]] = []
        """Transitions made in memory, announced once the write that records them is done."""
        self._unsaid: list[Callable[[], None]] = []
        """What is said about an ended process, held while a restart without delay spawns (`_say`)."""

    @property
    def inst(self) -> Instance:
        """The instance as the actor knows it now (the record in memory)."""
        return self._record.inst

    def prepare(self) -> None:
        """Decide, from what ``instance.json`` recorded, what to adopt and what is wanted now."""
        takeover = take_over(self.inst, self.runtime, self.services.boot_id, self.log)
        plan, self.proc, self._restart_requested = takeover.plan, takeover.proc, takeover.restart
        if (ended := takeover.ended) is not None:
            reason = f"{plan.ended} ({ended.describe()})"
            self._pending = _Outcome(exit=ended, failed=ended.failed, reason=reason)
        self._plan, self._resume, self.desired, self.phase = plan, plan.resume, plan.desired, plan.phase
        self._record.show_memory()  # what it wants now shows at once; the actor writes it first thing

    # ------------------------------------------------------------------ commands (called by the engine)

    def start(self) -> StartWaiter | None:
        """Want it running now; an explicit start forgets past crashes. None when it already runs."""
        self._want_running()
        if self.inst.status is _RUNNING and self.proc is not None:
            return None
        waiter = self._waiters.start()
        if self._sleeping:
            self._interrupt()
        self._poke()
        return waiter

    def stop(self) -> anyio.Event:
        self._set_desired("stopped")
        waiter = self._waiters.stop()
        self._interrupt()
        self._poke()
        return waiter

    def restart(self) -> StartWaiter:
        self._want_running()
        self._request_restart()
        return self._waiters.start(current_counts=not self._restart_requested)

    def update(self, runtime: InstanceRuntime, *, restart: bool) -> bool:
        """Swap in new launch data / policies; restart the process when asked and one is up. True if so."""
        self.runtime = runtime
        self.log = self._record.log = bound_log(runtime)
        if restart and (self.proc is not None or self.inst.status in ACTIVE):
            self._request_restart()
            return True
        return False

    def close(self, mode: Literal["remove", "shutdown"]) -> None:
        self._closing = mode
        self._interrupt()
        self._poke()

    def _want_running(self) -> None:
        """An operator's start or restart: releases a hold and forgets past crashes."""
        self._set_desired("running")
        self._release()
        self.inst.restart_count = 0
        self._waiters.stopped()

    def _release(self) -> None:
        if self.phase is Phase.HELD:
            self._move(Phase.IDLE)

    def _request_restart(self) -> None:
        if self.proc is not None or self.inst.status in ACTIVE:
            self._restart_requested = True
            self._interrupt()
        elif self._sleeping:
            self._interrupt()
        self._poke()

    def _set_desired(self, desired: DesiredState) -> None:
        self.desired = desired
        self.inst.desired = desired
        self.inst.desired_boot_id = self.services.boot_id

    def _interrupt(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def _poke(self) -> None:
        self._commands += 1
        self._doorbell.ring()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """The actor's loop, until it is closed. A bug raises out of it: the engine then calls `crashed` and
        runs it again (`supervisor.engine._supervision`), and `finish` once it is over."""
        await self._recover()
        while True:
            if self._closing is not None:
                reason = "supervisor shut down" if self._closing == "shutdown" else "removed from supervision"
                await self._halt(reason, then=Phase.CLOSED)
                self._waiters.stopped()
                return
            if self._restart_requested:
                self._restart_requested = False
                await self._halt("restarting", then=Phase.IDLE)
                continue  # a close or stop asked for while the old process stopped comes first
            if self.desired == "running" and self.phase is not Phase.HELD:
                commands = self._commands
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    try:
                        await self._supervise()
                    finally:
                        self._scope = None
                        self._say()
                if scope.cancel_called or commands != self._commands:
                    self._release()  # somebody asked for more since it began: a hold does not stand
                continue
            stopped = self.desired == "stopped"  # else held: wait for an operator
            await self._halt(
                "stopped by request" if stopped else None, then=Phase.IDLE if stopped else Phase.HELD
            )
            self._waiters.stopped()
            await self._doorbell.wait()

    def finish(self) -> None:
        """The loop is over for good (closed, detached or cancelled): a process still up lives on, to be
        adopted; nobody waits on this actor any longer."""
        if self.proc is not None:
            self.proc.release()
        self.services.sandboxes.forget(self.runtime.instance_id)
        self.logs.lines.close()
        self._move(Phase.CLOSED)
        self._waiters.release_all()
        self.done.set()

    @property
    def closing(self) -> bool:
        return self._closing is not None

    async def wait_for_command(self) -> None:
        await self._doorbell.wait()

    async def _recover(self) -> None:
        """First thing: save what `prepare` decided and clean up after a process that did not survive. (After
        an internal error the loop begins again here, with the plan used up.)"""
        plan, self._plan = self._plan, None
        if self.proc is not None:
            self.logs.cursor = LogCursor(self.runtime.log_path)
            self._spawned_at = anyio.current_time()
            self.proc.send_signal(signal.SIGCONT)  # in case a rotation had it paused when we went down
            self.inst.status_detail = f"adopted pid {self.proc.pid}"
            self.log.info("adopted", pid=self.proc.pid)
            self._note(f"adopted pid {self.proc.pid}, still running from before eyried started")
            await self._record.persist_changes()
            # a sweep of an earlier run's leftovers that a dead image left unfinished ends now
            self.services.request_sweep(self.runtime.instance_id, False)
            self._emit("transition", self.inst.status, self.inst.status, self.inst.status_detail)
        elif plan is not None and plan.ended is not None:
            dead, self._pending = self._pending, None
            await self._sweep(pgid=self.inst.pgid, before=None)
            if dead is not None:  # found dead
                self._record.process_ended(dead.exit)
            else:
                self._record.forget_process()
            if plan.through_policy:
                self._pending = dead
            else:
                await self._transition(_STOPPED, plan.ended)
        else:
            # a process spawned just before a daemon crash, never recorded, must not run twice
            await self._sweep(pgid=None, before=None)
            if self.desired != "running" or self.phase is Phase.HELD or self._resume is not None:
                await self.persist()  # otherwise the first start writes it all in one go

    async def _supervise(self) -> None:
        """Run, and restart through the policy, until stopped (cancelled) or the policy gives up."""
        if self._resume is not None:
            resume, self._resume = self._resume, None
            self._move(resume.phase)
            await self._wait_out((resume.at - utcnow()).total_seconds())
        outcome, self._pending = self._pending, None
        while True:
            try:
                if outcome is None:
                    self._waiters.attempt_begins()
                    outcome = await self._attempt()
                decision = await self._decide(outcome)
            finally:
                self._waiters.attempt_ends()
            outcome = None
            if decision.delay is None:
                return
            await self._wait_out(decision.delay)

    async def _wait_out(self, seconds: float) -> None:
        """Sleep through a backoff or cooldown; at the end of a cooldown the restart count starts over."""
        self._sleeping = True
        try:
            if seconds > 0:
                await anyio.sleep(seconds)
            else:  # a restart without delay: a stop asked for meanwhile counts; no other task runs first
                await checkpoint_if_cancelled()
        finally:
            self._sleeping = False
        if self.phase is Phase.COOLDOWN:
            self.inst.restart_count = 0
            self.inst.total_restarts += 1

    async def _decide(self, outcome: _Outcome) -> Decision:
        """After the process ended: back off and retry, give up in ``error``, or stay stopped."""
        d = self._policy(failed=outcome.failed, reason=outcome.reason)
        at_once = d.delay == 0 and d.phase is Phase.BACKOFF  # recorded with the new process
        if not at_once:
            self._say()
        changes: dict[str, Any] = {
            "restart_count": d.restart_count,
            "total_restarts": d.total_restarts,
            "next_start_at": utcnow() + timedelta(seconds=d.delay) if d.delay is not None else None,
        }
        if d.last_error is not None:
            changes["last_error"] = d.last_error
        if d.completed:
            self._set_desired("stopped")
        self._move(d.phase)
        await self._transition(d.status, d.detail, unwritten=at_once, **changes)
        line = f"restart in {d.delay:.1f}s" if d.phase is Phase.BACKOFF else d.detail
        if at_once:
            self._unsaid.append(functools.partial(self._note, line))
        else:
            self._note(line)
        return d

    def _policy(self, *, failed: bool, reason: str) -> Decision:
        inst = self.inst
        return decide(
            self.runtime.restart,
            restart_count=inst.restart_count,
            total_restarts=inst.total_restarts,
            failed=failed,
            reason=reason,
        )

    async def _attempt(self) -> _Outcome:
        """Spawn (unless adopted), wait for readiness, then watch liveness until the process ends."""
        if self.proc is None:
            self._move(Phase.SPAWNING)
            try:
                proc = await self._launch()
            except StartFailed as exc:
                self._say()
                self.log.warning("start_failed", error=str(exc))
                self._note(f"start failed: {exc}")
                # no process of this instance is watched now: whatever a failed start left running is ended
                self.services.request_sweep(self.runtime.instance_id, False)
                return _Outcome(exit=None, failed=True, reason=str(exc))
            self.proc = proc
            self._say()
            self._note(f"started pid {proc.pid} on port {self.runtime.port}")
            spawned = spawned_fields(proc, self.runtime, self.services)
            if ready_at_spawn(self.runtime.ready) and proc.alive():
                # nothing to wait for: record the process as running in the same write that records it
                self._move(Phase.RUNNING)
                await self._transition(
                    _RUNNING,
                    f"process {proc.pid} started",
                    via=_STARTING,
                    health_status=HealthStatus.HEALTHY,
                    last_seen=utcnow(),
                    **spawned,
                )
            else:
                self._move(Phase.STARTING)
                await self._transition(
                    _STARTING, "waiting for readiness", health_status=HealthStatus.UNKNOWN, **spawned
                )
        proc = self.proc
        watch = Watch(self, proc, self._spawned_at)
        if self.inst.status is not _RUNNING:
            ready = await race(proc, watch.readiness)
            if isinstance(ready, ExitStatus):
                return self._exited(proc, ready)
            if not ready.ok:
                self._note(f"not ready: {ready.detail}")
                await self._stop_process(proc)
                return _Outcome(exit=proc.exit_status, failed=True, reason=ready.detail)
            self._move(Phase.RUNNING)
            await self._transition(
                _RUNNING, ready.detail, health_status=HealthStatus.HEALTHY, last_seen=utcnow()
            )
        live = await race_liveness(proc, watch.liveness, self.limits)
        if isinstance(live, ExitStatus):
            return self._exited(proc, live)
        self._note(f"liveness failed: {live.detail}")
        await self._stop_process(proc, detail=f"restarting: {live.detail}", reason=self.limits.reason)
        return _Outcome(exit=proc.exit_status, failed=True, reason=live.detail)

    def _exited(self, proc: ProcessHandle, status: ExitStatus) -> _Outcome:
        """The process ended on its own: note it and sweep up what it left behind, in the background."""
        self.proc = None
        self.logs.cursor = None
        self._record.process_ended(status)
        self._unsaid.append(functools.partial(self._say_exited, proc, status))
        return _Outcome(exit=status, failed=status.failed, reason=status.describe())

    def _say_exited(self, proc: ProcessHandle, status: ExitStatus) -> None:
        self.log.warning("process_exited", pid=proc.pid, exit=status.describe())
        self._note(f"pid {proc.pid} exited: {status.describe()}")
        self.services.request_sweep(self.runtime.instance_id, group_alive(proc.pgid))

    def _say(self) -> None:
        """Say what was held back about the process that ended, in order: at once, or, when it restarts
        without delay, once the new one has exec'd (or failed to)."""
        unsaid, self._unsaid = self._unsaid, []
        for call in unsaid:
            call()

    async def _launch(self) -> ProcessHandle:
        holder = await check_port(self.runtime, self.services, self._sweep_port_holders, self.log)
        if holder is not None:
            await self._move_port(holder)
        proc = await spawn_child(self.runtime, self.services, self.logs, self.log)
        self._spawned_at = anyio.current_time()
        return proc

    async def _move_port(self, holder: str) -> None:
        """Start on another port, since ``holder`` keeps this one; the record and an event say so."""
        old = self.runtime.port
        self.runtime = await relocate(self.runtime, holder, self.services)
        self.inst.port = self.runtime.port
        self.inst.config_hash = self.runtime.config_hash
        detail = f"port {old} is held by {holder}: moved to port {self.runtime.port}"
        status = self.inst.status
        self._emit("port_moved", status, status, detail, old_port=old, port=self.runtime.port, holder=holder)
        self._note(detail)
        await self.persist()

    async def set_health(self, status: HealthStatus, detail: str) -> None:
        self.inst.health_status = status
        await self.persist()
        self._emit("health", self.inst.status, self.inst.status, detail, health_status=status.value)

    async def rotate_log(self) -> None:
        """Rotate the running instance's log now (the engine's periodic size check calls this)."""
        async with self.logs.lock:
            if self.proc is not None and self.inst.status is _RUNNING:
                await self.logs.rotate(self.runtime, self.proc, self.services.threads, self.log)

    def log_needs_rotation(self) -> bool:
        return self.proc is not None and self.inst.status is _RUNNING and self.logs.too_big(self.runtime)

    # ------------------------------------------------------------------ stopping

    async def _halt(self, reason: str | None, *, then: Phase) -> None:
        """Make sure no process runs and the recorded status says so, in phase ``then``."""
        if self.proc is not None:
            await self._stop_process(self.proc)
        status = self.inst.status
        self._move(then)
        if reason is None:
            return
        if status in ACTIVE:
            await self._transition(_STOPPED, reason)
        elif self._closing == "shutdown":
            await self.persist()  # a backoff or cooldown resumes at the next start
        elif status is _ERROR or (status is _STOPPED and self.inst.next_start_at is not None):
            await self._transition(_STOPPED, reason, next_start_at=None)

    async def _stop_process(self, proc: ProcessHandle, *, detail: str = "stopping", reason: str = "") -> None:
        self._move(Phase.STOPPING)
        if self.inst.status in ACTIVE:
            self.inst.status_detail = detail
        # an operator's stop is on disk before any signal; the /proc scan meanwhile is shared with the others
        first = self._record.desired_saved if self.desired == "stopped" else None
        result = await stop_run(
            self.runtime, proc, self.services, self.log, on_slow=self.persist, before_signal=first
        )
        self._note(stop_line(self.runtime, proc, result))
        self.proc = None
        self.logs.cursor = None
        self._record.process_ended(proc.exit_status, reason)
        self.stop_left = "" if result.port_free else result.detail
        if not result.port_free:
            self.inst.last_error = result.detail
            self.log.warning("port_not_freed", detail=result.detail)

    async def _sweep(self, *, pgid: int | None, before: int | None) -> None:
        await sweep(self.runtime, self.services, self.log, pgid=pgid, before=before)

    async def _sweep_port_holders(self) -> None:
        await self._sweep(pgid=None, before=procfs.uptime_ticks())

    async def sweep_leftovers(self, exited: int) -> None:
        """End processes of earlier runs that outlived them: started before ``exited``, the tick the last
        unplanned exit was seen (never the current run's, which started later, maybe still being spawned)."""
        before = min(exited, self.proc.start_ticks if self.proc is not None else exited) - 1
        try:
            await self._sweep(pgid=None, before=before)
        except Exception:
            self.log.exception("leftover_sweep_failed")

    # ------------------------------------------------------------------ recording

    def _move(self, new: Phase) -> None:
        """Move to phase ``new`` through the phase table; the next write records it."""
        check_phase_move(self.phase, new)
        self.phase = new
        assign(self.inst, phase=new.value)

    async def _transition(
        self,
        new: InstanceStatus,
        detail: str,
        *,
        via: InstanceStatus | None = None,
        unwritten: bool = False,
        **changes: Any,
    ) -> None:
        """Move to ``new`` (through ``via`` first, recorded in the same write), persist, then announce;
        ``unwritten``: in memory only, announced after the next write."""
        old = self.inst.status
        if via is not None:
            check_transition(old, via)
            check_transition(via, new)
        else:
            check_transition(old, new)
        assign(self.inst, **changes, status=new, status_detail=detail, status_updated_at=utcnow())
        if unwritten:
            self._unwritten.append((self.inst.model_copy(), old, new, detail))
            return
        await self.persist()
        if via is not None:
            self._emit("transition", old, via, "spawned")
            old = via
        self._emit("transition", old, new, detail)
        if new in SETTLED:
            self._waiters.attempt_settled()

    async def persist(self) -> None:
        await self._record.persist()
        unwritten, self._unwritten = self._unwritten, []
        for inst, old, new, detail in unwritten:
            announce(self.services.emit, self.log, self.runtime, inst, "transition", old, new, detail, {})
            if new in SETTLED:
                self._waiters.attempt_settled()

    def _note(self, text: str) -> None:
        self.logs.note(self.runtime, text)

    def _emit(self, kind: str, old: InstanceStatus, new: InstanceStatus, detail: str, **data: Any) -> None:
        announce(self.services.emit, self.log, self.runtime, self.inst, kind, old, new, detail, data)

    async def crashed(self, message: str) -> float | None:
        """The loop raised (a bug here, not in the agent): end the process as after a crash and let the
        restart policy say in how many seconds the loop runs again (None: when an operator starts it)."""
        old = self.inst.status
        try:
            if self.proc is not None:
                await self._stop_process(self.proc)
        except Exception:
            self.log.exception("internal_error_stop_failed")
            self.proc = None  # what is left of it, the next run's sweep ends
        inst = self.inst
        d = self._policy(failed=True, reason=message)
        self._move(Phase.HELD)
        next_start = None
        if d.delay is not None:  # the loop, run again, waits it out as a backoff recorded before
            next_start = utcnow() + timedelta(seconds=d.delay)
            self._resume = Resume(at=next_start, cooldown=d.new_round)
            self._move(Phase.IDLE)
        assign(inst, restart_count=d.restart_count, total_restarts=d.total_restarts, last_error=message)
        assign(inst, status=d.status, status_detail=d.detail, next_start_at=next_start)
        inst.status_updated_at = utcnow()
        try:
            await self.persist()
        except Exception:
            self.log.exception("state_not_saved")
        self._emit("transition", old, d.status, message)
        return d.delay

    def snapshot(self) -> Instance:
        """The state last written to ``instance.json`` (what others can read), with the current last_seen."""
        return self._record.snapshot()

    @property
    def record(self) -> InstanceRecord:
        return self._record
