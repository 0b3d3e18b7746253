"""When each instance's log size is next looked at.

A fleet of quiet agents would otherwise cost one ``stat`` per instance at every check (each second): most of
an idle daemon's CPU at a few hundred instances. A log that grew, or that holds more than half its limit, is
looked at on every check; one that stayed the same size below half its limit is looked at half as often
each time, up to `QUIET_CHECKS` checks apart (8 s at the default interval of 1 s), and on every check again
as soon as it grows.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.engine._logs import log_size
from supervisor.engine.runtime import InstanceRuntime

__all__ = ["QUIET_CHECKS", "LogChecks"]

QUIET_CHECKS = 8
"""At most this many check intervals between two looks at a quiet log: what it may outgrow its limit by is
what it writes in that time, starting from under half of the limit."""


@dataclass(slots=True)
class _Seen:
    size: int
    gap: float
    due: float


class LogChecks:
    """Sizes seen, by instance id; ``interval`` is the engine's check interval."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._seen: dict[str, _Seen] = {}

    def over_limit(self, rt: InstanceRuntime, now: float) -> bool:
        """Whether the instance's log is at or over its size limit; False without a look when none is due."""
        seen = self._seen.get(rt.instance_id)
        if seen is not None and now < seen.due:
            return False
        size = log_size(rt.log_path)
        limit = rt.logs.max_bytes
        if seen is None or size != seen.size or size * 2 >= limit:
            gap = self._interval
        else:
            gap = min(seen.gap * 2, self._interval * QUIET_CHECKS)
        self._seen[rt.instance_id] = _Seen(size, gap, now + gap - self._interval / 2)
        return size >= limit

    def keep_only(self, instance_ids: set[str]) -> None:
        """Forget the instances no longer supervised."""
        for gone in self._seen.keys() - instance_ids:
            del self._seen[gone]
