"""Restart, health and log policies: plain data the engine follows and the fleet file sets.

They live below the engine and the fleet package: the engine depends on what a policy says, not on the
file that spells it.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from supervisor.models import Duration

__all__ = ["HealthPolicy", "LogPolicy", "RestartPolicy"]


class RestartPolicy(BaseModel):
    """When and how soon a stopped process comes back (DESIGN.md, "Restart policy")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["always", "on-failure", "never"] = "on-failure"
    initial_delay: Duration = 1.0
    factor: float = Field(default=2.0, ge=1.0)
    max_delay: Duration = 60.0
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    reset_after: Duration = 60.0
    max_retries: int = Field(default=10, ge=0)
    cooldown: Duration = 600.0

    def should_restart(self, *, failed: bool) -> bool:
        """``failed`` is an unplanned non-zero exit, a signal death or a liveness failure."""
        return self.policy == "always" or (self.policy == "on-failure" and failed)

    def delay(self, restart_count: int, rng: random.Random | None = None) -> float:
        """``min(initial_delay × factor^(restart_count−1), max_delay)`` with ±jitter."""
        base = min(self.initial_delay * self.factor ** max(restart_count - 1, 0), self.max_delay)
        if self.jitter and base:
            base *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(base, 0.0)


class HealthPolicy(BaseModel):
    """How often liveness is probed and how many failures in a row restart (DESIGN.md, "Liveness")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration = 10.0
    timeout: Duration = 3.0
    failure_threshold: int = Field(default=3, ge=1)
    start_timeout: Duration = 60.0


class LogPolicy(BaseModel):
    """Size-based rotation of ``logs/<framework>.log``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    backups: int = Field(default=3, ge=0)
