"""What happens after a process ended: the restart policy as one pure function.

Kept apart from the actor so the rules of DESIGN.md ("Restart policy") read in one place and can be tested
without processes: on an unplanned end ``restart_count`` and ``total_restarts`` grow and the next start waits
``min(initial_delay × factor^(restart_count−1), max_delay)`` ± jitter; past ``max_retries`` the instance is in
``error`` ("crash loop") and is retried after ``cooldown`` (0: an operator must start it); a clean exit the
policy does not restart stays ``stopped``; a failure it does not restart is an ``error``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from supervisor.engine.states import Phase
from supervisor.models import InstanceStatus
from supervisor.policies import RestartPolicy

__all__ = ["Decision", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    status: InstanceStatus  # STOPPED or ERROR
    detail: str  # status_detail: "backoff 2.0s", "crash loop: 5 restarts; retry in 600s", …
    delay: float | None  # seconds until the next start; None: no automatic start
    restart_count: int
    total_restarts: int
    last_error: str | None  # the new last_error; None leaves it as it was
    new_round: bool = False  # after the delay the restart count starts over (a cooldown retry)
    completed: bool = False  # a clean exit that stays stopped: nothing more is wanted of it

    @property
    def phase(self) -> Phase:
        """The phase the actor waits in after this decision."""
        if self.completed:
            return Phase.IDLE
        if self.delay is None:
            return Phase.HELD
        return Phase.COOLDOWN if self.new_round else Phase.BACKOFF


def decide(
    policy: RestartPolicy,
    *,
    restart_count: int,
    total_restarts: int,
    failed: bool,
    reason: str,
    rng: random.Random | None = None,
) -> Decision:
    """The decision for a process that ended with ``reason`` (``failed``: not a clean exit 0)."""
    error = reason if failed else None
    if not policy.should_restart(failed=failed):
        if failed:
            return Decision(
                InstanceStatus.ERROR, f"failed: {reason}", None, restart_count, total_restarts, error
            )
        return Decision(
            InstanceStatus.STOPPED,
            f"completed: {reason}",
            None,
            restart_count,
            total_restarts,
            None,
            completed=True,
        )
    if restart_count >= policy.max_retries:
        loop = f"crash loop: {restart_count} restarts"
        error = f"{loop} (last: {reason})"
        if policy.cooldown > 0:
            detail = f"{loop}; retry in {policy.cooldown:g}s"
            return Decision(
                InstanceStatus.ERROR,
                detail,
                policy.cooldown,
                restart_count,
                total_restarts,
                error,
                new_round=True,
            )
        return Decision(InstanceStatus.ERROR, loop, None, restart_count, total_restarts, error)
    count = restart_count + 1
    delay = policy.delay(count, rng)
    return Decision(InstanceStatus.STOPPED, f"backoff {delay:.1f}s", delay, count, total_restarts + 1, error)
