"""When each instance's log size is next looked at.

A fleet of quiet agents would otherwise cost one ``stat`` per instance at every check (each second): most of
an idle daemon's CPU at a few hundred instances. A log that grew, or that holds more than half its limit, is
looked at on every check; one that stayed the same size below half its limit is looked at half as often
each time, up to `QUIET_CHECKS` checks apart (8 s at the default interval of 1 s), and on every check again
as soon as it grows. Quiet logs at that widest gap fall due together, on a grid of that many checks, so an
idle fleet's checker wakes once per grid step rather than once per check; a log not looked at yet (a new
instance's) gets its first look at the next grid step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from supervisor.engine._logs import log_size
from supervisor.engine.runtime import InstanceRuntime

__all__ = ["QUIET_CHECKS", "LogChecks"]

QUIET_CHECKS = 8
"""At most this many check intervals between two looks at a quiet log: what it may outgrow its limit by is
what it writes in that time, starting from under half of the limit."""


@dataclass(slots=True, eq=False)
class _Seen:
    size: int
    gap: float  # checks apart, in seconds (0: not looked at yet)
    due: float


class LogChecks:
    """Sizes seen, by instance id; ``interval`` is the engine's check interval."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._half = interval / 2
        self._widest = interval * QUIET_CHECKS
        self._seen: dict[str, _Seen] = {}

    def over_limit(self, rt: InstanceRuntime, now: float) -> bool:
        """Whether the instance's log is at or over its size limit; False without a look when none is due."""
        seen = self._seen.get(rt.instance_id)
        if seen is not None and now < seen.due:
            return False
        size = log_size(rt.log_path)
        limit = rt.logs.max_bytes
        if seen is None:
            seen = self._seen[rt.instance_id] = _Seen(size, 0.0, 0.0)
        if seen.gap == 0.0 or size != seen.size or size * 2 >= limit:
            seen.gap = self._interval
        else:
            seen.gap = min(seen.gap * 2, self._widest)
        seen.size = size
        seen.due = self._grid_step(now, seen.gap) if seen.gap >= self._widest else now + seen.gap - self._half
        return size >= limit

    def next_due(self, instance_ids: Iterable[str], now: float) -> float:
        """When the next look is due among ``instance_ids``; one never looked at (new, or without a process
        until now) is due at the next step of the quiet logs' grid."""
        seen = self._seen
        unseen = self._grid_step(now, self._interval * QUIET_CHECKS)
        return min((seen[i].due if i in seen else unseen for i in instance_ids), default=unseen)

    def _grid_step(self, now: float, within: float) -> float:
        """The last step of the shared grid (`QUIET_CHECKS` checks apart) at most ``within`` after ``now``,
        half a check early, as every due time is, so that a check at that moment counts."""
        widest = self._widest
        return math.floor((now + within + self._half) / widest) * widest - self._half

    def keep_only(self, instance_ids: set[str]) -> None:
        """Forget the instances no longer supervised."""
        for gone in self._seen.keys() - instance_ids:
            del self._seen[gone]
