"""The soak's processes as /proc shows them: everything whose environment carries this run's tag.

The harness starts eyried with ``CHAOS_RUN=<home>``; agents inherit it, and so do their children and the
squatters the harness starts itself, so the tag finds every process of this run and none of another's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

from supervisor.engine.procfs import MARKER_VAR, read_cmdline, read_stat

__all__ = ["RUN_VAR", "Proc", "descendants", "end_all", "snapshot"]

RUN_VAR = "CHAOS_RUN"
"""The environment variable naming the home of the soak a process belongs to."""


@dataclass(frozen=True)
class Proc:
    """One live process of this run."""

    pid: int
    ppid: int
    pgid: int
    start_ticks: int
    env: dict[str, str]
    argv: tuple[str, ...]

    @property
    def marker(self) -> str | None:
        """The instance id it was started for, if any."""
        return self.env.get(MARKER_VAR)

    @property
    def is_daemon(self) -> bool:
        return self.marker is None and "supervisor.daemon" in self.argv


def _environ(pid: int) -> dict[str, str] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read(1 << 20)
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def snapshot(tag: str) -> dict[int, Proc]:
    """Every live (not zombie) process whose environment has ``CHAOS_RUN=tag``."""
    found: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        env = _environ(pid)
        if env is None or env.get(RUN_VAR) != tag:
            continue
        info = read_stat(pid)
        if info is None or info.gone:
            continue
        found[pid] = Proc(pid, info.ppid, info.pgid, info.start_ticks, env, tuple(read_cmdline(pid)))
    return found


def descendants(procs: dict[int, Proc], root: int) -> set[int]:
    """``root`` and every process below it in ``procs``."""
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    seen = {root}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def end_all(tag: str, deadline: float = 20.0) -> list[int]:
    """SIGKILL every process of this run, daemons first, until none is left; return what would not die."""
    until = time.monotonic() + deadline
    while True:
        procs = snapshot(tag)
        if not procs or time.monotonic() > until:
            return sorted(procs)
        for proc in sorted(procs.values(), key=lambda p: not p.is_daemon):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
