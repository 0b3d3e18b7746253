"""What an actor makes of an instance's record when it takes the instance over (a daemon start, restart or
re-exec): the recovery plan, one pure function.

Kept apart from the actor so the rules read in one place and can be tested without processes, like
`restart.decide`. The desired state holds until the next boot (then autostart decides); a process recorded in
this boot is adopted if it still runs, and one that died meanwhile goes through the restart policy when it is
wanted; after a reboot nothing recorded can still run. A backoff or cooldown recorded in this boot resumes; an
``error`` recorded in this boot waits for an operator; another boot forgets the restart count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from supervisor.engine.states import ACTIVE, Phase
from supervisor.models import DesiredState, Instance, InstanceStatus

__all__ = ["RecoveryPlan", "Resume", "plan_recovery", "same_program"]

RecordedProcess = Literal["adopt", "found dead", "rebooted", "unproven", "none"]
"""``unproven``: the record names no boot (a tool that drops eyried's keys saved it), so its process cannot be
told from one of an earlier boot and is treated as one."""


@dataclass(frozen=True, slots=True)
class Resume:
    """A backoff or cooldown the record was waiting out: the next start waits until ``at``."""

    at: datetime
    cooldown: bool  # after a crash loop: when it ends the restart count starts over

    @property
    def phase(self) -> Phase:
        return Phase.COOLDOWN if self.cooldown else Phase.BACKOFF


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    desired: DesiredState
    process: RecordedProcess  # what to do with the recorded process: adopt it, or it did not survive
    phase: Phase  # the actor's first phase
    resume: Resume | None = None
    reset_counts: bool = False  # another boot: the restart count and a pending start are forgotten

    @property
    def ended(self) -> str | None:
        """Why the recorded process is gone, when it did not survive."""
        if self.process == "found dead":
            return "exited while the supervisor was not running"
        if self.process == "rebooted":
            return "system restarted"
        if self.process == "unproven":
            return "the record names no boot to adopt its process by (saved without eyried's keys)"
        return None

    @property
    def through_policy(self) -> bool:
        """A wanted process that died meanwhile is restarted (or not) by the restart policy, as a crash."""
        return self.process == "found dead" and self.desired == "running"

    def adoption_failed(self) -> RecoveryPlan:
        """The plan once the recorded process turns out gone (or a stranger reusing its pid)."""
        return replace(self, process="found dead", phase=Phase.IDLE)


def plan_recovery(record: Instance, *, boot_id: str, autostart: bool) -> RecoveryPlan:
    """The plan for ``record`` on the machine booted as ``boot_id``."""
    same_boot = record.desired_boot_id == boot_id
    if same_boot and record.desired is not None:
        desired: DesiredState = record.desired
    else:
        desired = "running" if autostart else "stopped"
    process: RecordedProcess = "none"
    phase = Phase.IDLE
    if record.status in ACTIVE:
        if not record.boot_id:
            process = "unproven"
        elif record.boot_id != boot_id:
            process = "rebooted"
        elif record.pid:
            process = "adopt"
            phase = Phase.RUNNING if record.status is InstanceStatus.RUNNING else Phase.STARTING
        else:
            process = "found dead"
    if not same_boot:
        return RecoveryPlan(desired, process, phase, reset_counts=True)
    waited = record.status in (InstanceStatus.STOPPED, InstanceStatus.ERROR)
    if waited and record.next_start_at is not None:
        resume = Resume(record.next_start_at, cooldown=record.status is InstanceStatus.ERROR)
        return RecoveryPlan(desired, process, resume.phase, resume=resume)
    if record.status is InstanceStatus.ERROR:
        return RecoveryPlan(desired, process, Phase.HELD)
    return RecoveryPlan(desired, process, phase)


def same_program(current: list[str], recorded: list[str]) -> bool:
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
