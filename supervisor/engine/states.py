"""The lifecycle state table: the seed's five statuses, their groups, and the only moves between them.

Kept apart from the actor so the rules can be read in one screen. An illegal move is a bug in the engine,
never a user error, so `check_transition` raises `IllegalTransition`.

    created ──► starting ──► running
       │           │  ▲         │
       ▼           ▼  │         ▼
     error ◄──► stopped ◄───────┘        (every status may also fall to error;
                                          stopped and error may repeat with new detail)
"""

from __future__ import annotations

from collections.abc import Mapping

from supervisor.errors import IllegalTransition
from supervisor.models import InstanceStatus

__all__ = ["ACTIVE", "INACTIVE", "SETTLED", "TRANSITIONS", "check_transition"]

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
