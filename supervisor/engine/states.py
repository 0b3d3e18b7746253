"""The lifecycle state table: the seed's five statuses, their groups, and the only moves between them; and the
actor's phase (what its loop is doing now), with the only moves between phases.

Kept apart from the actor so the rules can be read in one screen. An illegal move is a bug in the engine,
never a user error, so `check_transition` and `check_phase_move` raise `IllegalTransition`.

    created ──► starting ──► running
       │           │  ▲         │
       ▼           ▼  │         ▼
     error ◄──► stopped ◄───────┘        (every status may also fall to error;
                                          stopped and error may repeat with new detail)

    idle ──► spawning ──► starting ──► running ──► stopping ──► idle
                ▲          a run that ends goes through the restart policy, to:
                └─────── backoff │ cooldown          held ──► idle (an operator's start or stop)
                                                     (every phase may also fall to held; all end in closed)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from supervisor.errors import IllegalTransition
from supervisor.models import InstanceStatus

__all__ = [
    "ACTIVE",
    "INACTIVE",
    "PHASE_MOVES",
    "SETTLED",
    "TRANSITIONS",
    "Phase",
    "check_phase_move",
    "check_transition",
]

_C, _STA, _R, _STO, _E = (
    InstanceStatus.CREATED,
    InstanceStatus.STARTING,
    InstanceStatus.RUNNING,
    InstanceStatus.STOPPED,
    InstanceStatus.ERROR,
)

ACTIVE: frozenset[InstanceStatus] = frozenset({_STA, _R})
"""A process exists (or is being brought up) for the instance."""

INACTIVE: frozenset[InstanceStatus] = frozenset({_C, _STO, _E})
"""No process runs for the instance."""

SETTLED: frozenset[InstanceStatus] = frozenset({_R, _STO, _E})
"""Where a start, stop or restart ends; what ``--wait`` waits for."""

TRANSITIONS: Mapping[InstanceStatus, frozenset[InstanceStatus]] = {
    # provisioned, never started: a start spawns, a failed start backs off or gives up
    _C: frozenset({_STA, _STO, _E}),
    # spawned, waiting for readiness: ready, exited / stopped / backing off, or failed for good
    _STA: frozenset({_R, _STO, _E}),
    # ready: it ends (exit, liveness failure, stop) or fails for good
    _R: frozenset({_STO, _E}),
    # not running: start again, give up, or record new detail (backoff, completed, stopped by request)
    _STO: frozenset({_STA, _STO, _E}),
    # failed: an operator start or the cooldown retry spawns again; stop clears it; detail may change
    _E: frozenset({_STA, _STO, _E}),
}


def check_transition(old: InstanceStatus, new: InstanceStatus) -> None:
    """Return quietly when ``old → new`` is in the table, else raise `IllegalTransition` naming both."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[old]))
        raise IllegalTransition(f"illegal transition {old.value} → {new.value} (from {old.value}: {allowed})")


class Phase(StrEnum):
    """What an instance's actor is doing now; recorded beside the seed status, which it refines."""

    IDLE = "idle"  # no process, nothing scheduled: waits for a command (created or stopped)
    HELD = "held"  # gave up (failed, crash loop, internal error): waits for an operator (error)
    BACKOFF = "backoff"  # waits out the delay before a restart (stopped, next_start_at set)
    COOLDOWN = "cooldown"  # waits out the cooldown after a crash loop (error, next_start_at set)
    SPAWNING = "spawning"  # checks the port and starts the process (the status it had, until it is spawned)
    STARTING = "starting"  # the process runs; waits for readiness (starting)
    RUNNING = "running"  # ready; liveness probes keep it honest (running)
    STOPPING = "stopping"  # ends the process tree (starting or running, detail "stopping" or "restarting: …")
    CLOSED = "closed"  # the actor ended: shut down, removed or detached (stopped, or as left for adoption)


_I, _H, _B, _CD, _SP, _ST, _RU, _SO, _CL = Phase

PHASE_MOVES: Mapping[Phase, frozenset[Phase]] = {
    # a start spawns, or first waits out a backoff recorded before a daemon restart; a process found dead
    # goes through the restart policy
    _I: frozenset({_H, _B, _CD, _SP, _CL}),
    # an operator's start or stop releases it
    _H: frozenset({_I, _CL}),
    # the wait ends (or a start cuts it short) in a spawn; a stop cancels it
    _B: frozenset({_I, _H, _SP, _CL}),
    _CD: frozenset({_I, _H, _SP, _CL}),
    # spawned, or ready at once; a failed start goes through the restart policy; cancelled before or after
    _SP: frozenset({_I, _H, _B, _CD, _ST, _RU, _SO, _CL}),
    # ready, or not: ended by the actor, or on its own (then through the restart policy)
    _ST: frozenset({_I, _H, _B, _CD, _RU, _SO, _CL}),
    _RU: frozenset({_I, _H, _B, _CD, _SO, _CL}),
    # the tree is gone: wait for a command, go through the restart policy, or end
    _SO: frozenset({_I, _H, _B, _CD, _CL}),
    _CL: frozenset(),
}
"""Every phase but closed may fall to held (a bug stops the actor's work) and to closed; staying in a phase is
no move."""


def check_phase_move(old: Phase, new: Phase) -> None:
    """Return quietly when ``old → new`` is in the phase table (or no move), else raise `IllegalTransition`
    naming both."""
    if new is not old and new not in PHASE_MOVES[old]:
        allowed = ", ".join(sorted(p.value for p in PHASE_MOVES[old])) or "none"
        raise IllegalTransition(f"illegal phase move {old.value} → {new.value} (from {old.value}: {allowed})")
