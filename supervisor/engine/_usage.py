"""What an instance's process tree uses now, read from ``/proc`` for the members of that tree only.

A whole-table `procfs.scan` costs a read of every process on the machine; sampling a fleet at every liveness
interval instead walks each tree from its main process: its ``stat`` line (CPU ticks, RSS, threads) and the
``children`` list of each of its threads, nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from supervisor.engine.procfs import CLK_TCK

__all__ = ["PAGE_SIZE", "Usage", "read_pss", "read_usage", "tree_usage"]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_PAGE = 4096
_READ_LIMIT = 1 << 16
_GONE_STATES = frozenset({b"Z", b"X", b"x"})


@dataclass(slots=True, eq=False)
class Usage:
    """One live process of a tree, at the moment it was read."""

    pid: int
    ppid: int
    start_ticks: int
    cpu_ticks: int  # user + system time, in clock ticks
    rss_bytes: int
    threads: int

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_ticks / CLK_TCK


def _read(path: str) -> bytes:
    """The file in one read when it fits in a page (a stat line, a short children list), as most do."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _PAGE)
        while len(data) % _PAGE == 0 and 0 < len(data) < _READ_LIMIT and (more := os.read(fd, _PAGE)):
            data += more
        return data
    finally:
        os.close(fd)


def read_usage(pid: int) -> Usage | None:
    """The process's usage, or None when it is gone or a zombie."""
    try:
        raw = _read(f"/proc/{pid}/stat")
        fields = raw[raw.rindex(b")") + 2 :].split(maxsplit=22)
        if fields[0] in _GONE_STATES:
            return None
        return Usage(
            pid=pid,
            ppid=int(fields[1]),
            start_ticks=int(fields[19]),
            cpu_ticks=int(fields[11]) + int(fields[12]),
            rss_bytes=max(int(fields[21]), 0) * PAGE_SIZE,
            threads=int(fields[17]),
        )
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int, threads: int) -> list[int]:
    """The process's children: each thread lists those it forked (most agents fork from one thread)."""
    tids = [str(pid)]
    if threads > 1:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
    found: list[int] = []
    for tid in tids:
        try:
            found.extend(int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split())
        except (OSError, ValueError):
            continue
    return found


def tree_usage(pid: int, start_ticks: int, *, walk: bool = True) -> list[Usage]:
    """The live processes of the tree under ``pid`` (the main process first), or [] when ``pid`` is no
    longer the process that started at ``start_ticks``; without ``walk``, the main process alone."""
    root = read_usage(pid)
    if root is None or root.start_ticks != start_ticks:
        return []
    if not walk:
        return [root]
    members = [root]
    stack = [root]
    seen = {pid}
    while stack:
        parent = stack.pop()
        for child in _children(parent.pid, parent.threads):
            if child in seen:
                continue
            seen.add(child)
            usage = read_usage(child)
            if usage is not None and usage.ppid == parent.pid:
                members.append(usage)
                stack.append(usage)
    return members


def read_pss(pid: int) -> int | None:
    """The process's proportional set size in bytes (None: gone, or the kernel has no ``smaps_rollup``).

    The kernel walks the page tables to count it, so it is read on request (``status NAME``), not sampled."""
    try:
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
