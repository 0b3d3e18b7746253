"""What the bench reads from ``/proc`` about managers and their children; how it ends what it started."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import time
from pathlib import Path

__all__ = [
    "alive",
    "ancestors",
    "children",
    "comm",
    "cpu_seconds",
    "kill_marked",
    "raise_nofile",
    "rss_mib",
    "sleep_children",
    "wait_gone",
]

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """``comm`` and the fields after it in ``/proc/<pid>/stat`` (the name may hold spaces and parentheses)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except OSError:
        return None
    open_paren, close_paren = raw.find("("), raw.rfind(")")
    return raw[open_paren + 1 : close_paren], raw[close_paren + 2 :].split()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[1][0] != "Z"


def comm(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def ancestors(pid: int, depth: int = 3) -> tuple[str | None, list[int]]:
    """The process's name and its parent, grandparent… up to ``depth`` levels (a spawn helper in between)."""
    name: str | None = None
    chain: list[int] = []
    current = pid
    for level in range(depth + 1):
        fields = _stat_fields(current)
        if fields is None:
            break
        if level == 0:
            name = fields[0]
        current = int(fields[1][1])
        if current <= 1:
            break
        chain.append(current)
    return name, chain[:depth]


def children(pid: int) -> set[int]:
    """Children of every thread of ``pid``: a manager may fork from any of them."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found.update(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found


def sleep_children(pid: int) -> set[int]:
    """The manager's children that have exec'd ``sleep``."""
    return {child for child in children(pid) if comm(child) == "sleep"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process itself (all its threads, children excluded)."""
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return (int(fields[1][11]) + int(fields[1][12])) / _TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ProcessLookupError(pid)


def raise_nofile() -> None:
    """Room for a pidfd per child at N = 1000."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_gone(pids: set[int], timeout: float) -> tuple[int, int]:
    """Wait until every process in ``pids`` has exited: the monotonic time (ns) the last one was seen gone,
    and how many were still alive at ``timeout``."""
    fds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            fds[os.pidfd_open(pid)] = pid
    last = time.monotonic_ns()
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    try:
        while fds and time.monotonic() < deadline:
            ready = poller.poll(max(1, int((deadline - time.monotonic()) * 1000)))
            last = time.monotonic_ns()
            for fd, _mask in ready:
                poller.unregister(fd)
                os.close(fd)
                del fds[fd]
        return last, len(fds)
    finally:
        for fd in fds:
            os.close(fd)


def _carries(pid: int, marker: bytes) -> bool:
    for name in ("environ", "cmdline"):
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/{name}").read_bytes():
                return True
    return False


def kill_marked(marker: str) -> list[int]:
    """SIGKILL every process (but this one) whose environment or command line holds ``marker``: what a run
    started and did not end, wherever it was reparented to."""
    own = os.getpid()
    needle = marker.encode()
    killed: list[int] = []
    for _ in range(20):
        found = [
            int(entry)
            for entry in os.listdir("/proc")
            if entry.isdigit() and int(entry) != own and _carries(int(entry), needle)
        ]
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    return killed
