"""What an actor takes over from an instance's record when a daemon image starts: the recovery plan, the
recorded process adopted (or how it ended), and whether that process must restart because it was started
from other launch data than the current declaration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from supervisor.engine._launch import adopt, launched_otherwise
from supervisor.engine._record import assign
from supervisor.engine.process import AdoptedProcess, ExitStatus, reap_recorded
from supervisor.engine.recovery import RecoveryPlan, plan_recovery
from supervisor.engine.runtime import InstanceRuntime
from supervisor.models import Instance

__all__ = ["Takeover", "take_over"]


@dataclass(slots=True, eq=False)
class Takeover:
    plan: RecoveryPlan
    proc: AdoptedProcess | None  # the recorded process, still running as recorded
    ended: ExitStatus | None  # how the recorded process ended, when it was found dead
    restart: bool  # adopted, but started from other launch data (an edit made while no daemon ran)


def take_over(inst: Instance, rt: InstanceRuntime, boot_id: str, log: Any) -> Takeover:
    """The takeover of ``inst`` (as recorded) for running ``rt`` on the machine booted as ``boot_id``; what
    is wanted now is set on ``inst`` (in memory: the actor writes it first thing)."""
    plan = plan_recovery(inst, boot_id=boot_id, autostart=rt.autostart)
    proc, restart = None, False
    if plan.process == "adopt":
        secrets = rt.secret_values()  # worked out once: both the proof and the launch hash leave them out
        proc = adopt(inst, rt, secrets)
        if proc is None:
            plan = plan.adoption_failed()
        elif launched_otherwise(inst, rt, secrets):
            restart = True
            log.info("launch_changed", pid=proc.pid, detail="restarting with the current launch data")
    ended = None
    if plan.process == "found dead":
        reaped = reap_recorded(inst.pid, inst.proc_start_time or 0.0) if inst.pid else None
        ended = reaped or ExitStatus()
    assign(inst, desired=plan.desired, desired_boot_id=boot_id, phase=plan.phase.value)
    if plan.reset_counts:
        assign(inst, restart_count=0, next_start_at=None)
    return Takeover(plan, proc, ended, restart)
