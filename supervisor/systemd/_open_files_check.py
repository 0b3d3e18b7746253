"""``doctor``'s check of the limit on open files against the fleet's size (`supervisor.engine.open_files`)."""

from __future__ import annotations

import contextlib
import resource

from supervisor._safe_read import read_text
from supervisor.engine.open_files import FDS_PER_INSTANCE, fds_needed
from supervisor.systemd._check import Check

__all__ = ["open_files_check", "process_limit"]


def process_limit(pid: int) -> tuple[int, int] | None:
    """``(soft, hard)`` limit on open files of process ``pid`` (``/proc/<pid>/limits``); None when unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in read_text(f"/proc/{pid}/limits", limit=8192).splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return _number(soft), _number(hard)
    return None


def _number(word: str) -> int:
    return resource.RLIM_INFINITY if word == "unlimited" else int(word)


def open_files_check(instances: int, daemon_pid: int | None) -> Check:
    """Whether eyried may open the files ``instances`` instances need: the running daemon's limits, else
    those a daemon started from here would have. Its hard limit is what counts: the daemon places what it
    holds for its instances above its soft limit, or raises that."""
    needed = fds_needed(instances)
    limits = process_limit(daemon_pid) if daemon_pid is not None else None
    if limits is not None:
        soft, hard = limits
        whose = f"eyried (pid {daemon_pid}) may open {hard} files (soft limit {soft})"
    else:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        whose = f"an eyried started from here may open up to {hard} files (its hard limit)"
    detail = f"{whose}; {instances} instances need about {needed} ({FDS_PER_INSTANCE} each, and sockets)"
    if hard != resource.RLIM_INFINITY and hard < needed:
        fix = "raise the hard limit: LimitNOFILE= in the unit (eyriectl install sets 524288), or ulimit -Hn"
        return Check("open files", False, detail, fix)
    return Check("open files", True, detail)
