"""Fast, raw reads of ``/proc``: one process's stat line, thread states and instance marker, and whole-table
scans.

psutil is convenient but builds objects per process; stopping or rotating many instances at once needs a
table of every process (parent, group, state, start time, and the ``EYRIE_INSTANCE_ID`` each one inherited)
in a few milliseconds, so it is read here with plain ``os.open``/``os.read``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "CLK_TCK",
    "HOME_VAR",
    "MARKER_VAR",
    "ProcInfo",
    "ProcTable",
    "age",
    "exited",
    "marker_of",
    "read_cmdline",
    "read_marker",
    "read_stat",
    "scan",
    "thread_states",
    "tree_members",
    "uptime",
    "uptime_ticks",
]

MARKER_VAR = "EYRIE_INSTANCE_ID"
"""Every child of an instance inherits this variable; it finds the tree even after a process escaped it."""
HOME_VAR = "EYRIE_HOME"
"""With the instance id, the marker: a copy of a home (``cp -a``) holds the same ids, and the original's
daemon must not take the copy's agents for its own leftovers."""

CLK_TCK = os.sysconf("SC_CLK_TCK")
_MARKER = MARKER_VAR.encode() + b"="
_HOME = HOME_VAR.encode() + b"="
_ENVIRON_LIMIT = 1 << 20
_ENVIRON_CHUNK = 8192
_GONE_STATES = frozenset({"Z", "X", "x"})


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One row of the process table."""

    pid: int
    ppid: int
    pgid: int
    state: str  # R S D T t Z X …, as in /proc/<pid>/stat
    start_ticks: int  # start time in clock ticks since boot: with the pid, a process identity
    marker: str | None = None  # its instance marker (see `marker_of`), when it has one

    @property
    def gone(self) -> bool:
        """Exited (a zombie waiting to be reaped counts as gone)."""
        return self.state in _GONE_STATES


@dataclass(frozen=True, slots=True)
class _Index:
    children: dict[int, list[int]]  # ppid → pids
    by_marker: dict[str, list[int]]
    by_pgid: dict[int, list[int]]


def _build_index(table: Mapping[int, ProcInfo]) -> _Index:
    children: dict[int, list[int]] = defaultdict(list)
    by_marker: dict[str, list[int]] = defaultdict(list)
    by_pgid: dict[int, list[int]] = defaultdict(list)
    for info in table.values():
        children[info.ppid].append(info.pid)
        by_pgid[info.pgid].append(info.pid)
        if info.marker is not None:
            by_marker[info.marker].append(info.pid)
    return _Index(children, by_marker, by_pgid)


class ProcTable(dict[int, ProcInfo]):
    """A process table (pid → row) from one `scan`. Many instances look up their trees in the same table
    (a fleet starting or stopping shares its scans), so the lookups they need are indexed once."""

    __slots__ = ("_index",)

    def index(self) -> _Index:
        try:
            return self._index
        except AttributeError:
            self._index: _Index = _build_index(self)
            return self._index


def _read(path: str, dir_fd: int | None = None) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _read_marker(path: str, dir_fd: int | None = None) -> str | None:
    """The marker from an environ file, read a few KiB at a time until both variables are found (most are
    1-4 KiB, one read)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        data = b""
        while len(data) < _ENVIRON_LIMIT:
            chunk = os.read(fd, _ENVIRON_CHUNK)
            if not chunk:
                break
            data += chunk
            if _complete(data, _MARKER) and _complete(data, _HOME):
                break
    finally:
        os.close(fd)
    instance_id = _parse_var(data, _MARKER)
    return None if instance_id is None else marker_of(_parse_var(data, _HOME), instance_id)


def marker_of(home: str | None, instance_id: str) -> str:
    """The marker of instance ``instance_id`` of ``home``: what a process started for it carries (its home
    and id). A process started by a release before homes were marked carries the bare id."""
    return f"{instance_id}@{home}" if home else instance_id


def _complete(environ: bytes, prefix: bytes) -> bool:
    at = environ.find(prefix)
    return at >= 0 and environ.find(b"\0", at) >= 0


def _stat_fields(raw: bytes) -> list[bytes]:
    """The fields after the command name, which may itself hold spaces and parentheses; state comes first."""
    return raw[raw.rindex(b")") + 2 :].split()


def _parse_stat(pid: int, raw: bytes, marker: str | None = None) -> ProcInfo:
    fields = _stat_fields(raw)
    return ProcInfo(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        state=fields[0].decode(),
        start_ticks=int(fields[19]),
        marker=marker,
    )


def _parse_var(environ: bytes, prefix: bytes) -> str | None:
    if environ.startswith(prefix):
        start = len(prefix)
    else:
        at = environ.find(b"\0" + prefix)
        if at < 0:
            return None
        start = at + 1 + len(prefix)
    end = environ.find(b"\0", start)
    return environ[start : end if end >= 0 else len(environ)].decode(errors="replace")


def read_stat(pid: int) -> ProcInfo | None:
    """The process's stat row, or None when it does not exist."""
    try:
        return _parse_stat(pid, _read(f"/proc/{pid}/stat"))
    except (OSError, ValueError, IndexError):
        return None


def exited(pid: int) -> bool:
    """Whether ``pid`` no longer runs: gone, or a zombie waiting for its parent."""
    info = read_stat(pid)
    return info is None or info.gone


def thread_states(pid: int) -> list[str]:
    """The state of each of the process's threads ([] when it is gone; a thread ending meanwhile is left out).

    A process counts as stopped only when every thread is: SIGSTOP reaches them one by one.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    states = []
    for tid in tids:
        try:
            raw = _read(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
        states.append(_stat_fields(raw)[0].decode())
    return states


def read_cmdline(pid: int) -> list[str]:
    """The process's argv ([] when it is gone or a kernel thread)."""
    try:
        fd = os.open(f"/proc/{pid}/cmdline", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if not raw:
        return []
    return [os.fsdecode(arg) for arg in raw.removesuffix(b"\0").split(b"\0")]


def read_marker(pid: int) -> str | None:
    """The marker (see `marker_of`) the process was started with (None: none, gone, or not readable)."""
    try:
        return _read_marker(f"/proc/{pid}/environ")
    except OSError:
        return None


def scan(*, markers: bool = True) -> ProcTable:
    """Every process on the machine; with ``markers`` also its instance marker (one more read each)."""
    table = ProcTable()
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in os.listdir(proc):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                raw = _read(f"{name}/stat", proc)
                marker = None
                if markers:
                    try:
                        marker = _read_marker(f"{name}/environ", proc)
                    except OSError:  # a kernel thread (no environment) or not ours to read
                        marker = None
                table[pid] = _parse_stat(pid, raw, marker)
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    finally:
        os.close(proc)
    return table


def uptime() -> float:
    """Seconds since boot: the clock process start times are measured on (what ``/proc/uptime`` shows, read
    without a file)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def uptime_ticks() -> int:
    """Now, on the clock that process start times use (ticks since boot)."""
    return int(uptime() * CLK_TCK)


def age(start_ticks: int) -> float:
    """Seconds a process started at ``start_ticks`` has been running."""
    return max(uptime() - start_ticks / CLK_TCK, 0.0)


def tree_members(
    table: Mapping[int, ProcInfo],
    *,
    marker: str,
    main: tuple[int, int] | None = None,
    pgid: int | None = None,
    started_before: int | None = None,
    exclude: Iterable[int] = (),
) -> set[int]:
    """Live processes that belong to an instance's tree.

    That is: every process carrying ``marker``; the ``main`` process (pid, start ticks) when it is still the
    same process, and all its descendants; members of group ``pgid`` when that group still holds one of ours;
    and the descendants of all of those. ``started_before`` keeps only processes started before that tick
    (leftovers of an earlier run, not the current one).
    """
    index = table.index() if isinstance(table, ProcTable) else _build_index(table)
    children = index.children
    roots = set(index.by_marker.get(marker, ()))
    if main is not None and (m := table.get(main[0])) is not None and m.start_ticks == main[1]:
        roots.add(m.pid)
    if pgid and any(table[pid].pgid == pgid for pid in roots):
        roots.update(index.by_pgid.get(pgid, ()))
    found: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, ()))
    skip = {os.getpid(), 1, *exclude}
    return {
        pid
        for pid in found
        if pid not in skip
        and not table[pid].gone
        and (started_before is None or table[pid].start_ticks <= started_before)
    }
