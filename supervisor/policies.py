"""Restart, health and log policies: plain data the engine follows and the fleet file sets.

They live below the engine and the fleet package: the engine depends on what a policy says, not on the
file that spells it. Every duration and number has bounds, refused when the file is loaded: a zero
interval spins, a huge factor or delay overflows the arithmetic that schedules the next step.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from supervisor.models import ByteSize, Duration, duration_within, format_size

__all__ = ["HealthPolicy", "LogPolicy", "MemoryPolicy", "RestartPolicy"]

_HOUR = 3600.0
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY


class RestartPolicy(BaseModel):
    """When and how soon a stopped process comes back (DESIGN.md, "Restart policy")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["always", "on-failure", "never"] = "on-failure"
    initial_delay: Annotated[Duration, duration_within(0.0, _HOUR)] = 1.0
    factor: float = Field(default=2.0, ge=1.0, le=100.0)
    max_delay: Annotated[Duration, duration_within(0.01, _DAY)] = 60.0
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    reset_after: Annotated[Duration, duration_within(0.0, _WEEK)] = 60.0
    max_retries: int = Field(default=10, ge=0, le=1_000_000)
    cooldown: Annotated[Duration, duration_within(0.0, _WEEK)] = 600.0

    def should_restart(self, *, failed: bool) -> bool:
        """``failed`` is an unplanned non-zero exit, a signal death or a liveness failure."""
        return self.policy == "always" or (self.policy == "on-failure" and failed)

    def delay(self, restart_count: int, rng: random.Random | None = None) -> float:
        """``min(initial_delay × factor^(restart_count−1), max_delay)`` with ±jitter, for any count."""
        base = self._backoff(max(restart_count - 1, 0))
        if self.jitter and base:
            base *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(base, 0.0)

    def _backoff(self, steps: int) -> float:
        """The delay before jitter, compared in log space so no power is computed past ``max_delay``; an
        ``initial_delay`` of 0 restarts at once every time (systemd's ``RestartSec=0``)."""
        if not self.initial_delay:
            return 0.0
        if self.initial_delay >= self.max_delay:
            return self.max_delay
        if self.factor == 1.0:
            return self.initial_delay
        growth = float(min(steps, 10**300)) * math.log(self.factor)
        if growth >= math.log(self.max_delay / self.initial_delay):
            return self.max_delay
        return min(self.initial_delay * self.factor**steps, self.max_delay)


class HealthPolicy(BaseModel):
    """How often liveness is probed and how many failures in a row restart (DESIGN.md, "Liveness")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Annotated[Duration, duration_within(0.1, _DAY)] = 10.0
    timeout: Annotated[Duration, duration_within(0.01, _HOUR)] = 3.0
    failure_threshold: int = Field(default=3, ge=1, le=1000)
    start_timeout: Annotated[Duration, duration_within(0.1, _DAY)] = 60.0


class LogPolicy(BaseModel):
    """Size-based rotation of ``logs/<framework>.log``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1024**4)
    backups: int = Field(default=3, ge=0, le=1000)


class MemoryPolicy(BaseModel):
    """A ceiling on the memory of an instance's whole process tree (RSS summed), checked at each liveness
    interval: ``grace`` samples in a row above ``max_memory`` end the tree as a failure, which the restart
    policy then handles like a crash. No ``max_memory``: no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_memory: ByteSize | None = Field(default=None, ge=1024 * 1024, le=1024**5)
    grace: int = Field(default=3, ge=1, le=1000)

    def exceeded(self, memory_bytes: int) -> str:
        """What the instance is told when ``memory_bytes`` is over the limit ("" when it is not)."""
        if self.max_memory is None or memory_bytes <= self.max_memory:
            return ""
        return f"memory limit {format_size(self.max_memory)} exceeded ({format_size(memory_bytes)})"
