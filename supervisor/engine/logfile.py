"""Per-instance log files: size-based rotation that neither loses nor blocks the child's writes, and a cursor
that reads what was appended since last time (for the ``log`` probe) and follows rotation and truncation.

Children write straight into the file (``O_APPEND``), so they keep logging through a daemon crash. Rotation
copies the bulk to a side file while the child runs, then pauses the instance's process tree (SIGSTOP, until
every thread is stopped), copies the few bytes written since, truncates, and resumes it (SIGCONT). Backups
shift ``<log>.1`` → ``<log>.2`` … and the oldest beyond ``backups`` is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from supervisor.engine import pidfd, procfs
from supervisor.policies import LogPolicy

__all__ = ["LogCursor", "Rotation", "backup_path", "needs_rotation", "rotate"]

_READ_LIMIT = 4 << 20
_TAIL_LIMIT = 64 << 10
_FREEZE_WAIT = 2.0
_COPY_CHUNK = 1 << 20
_STOPPED = frozenset("TtZXx")


def backup_path(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


class LogCursor:
    """What was appended to a log file since the last read; survives truncation and rotation."""

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self.path = path
        if offset is None:
            try:
                offset = path.stat().st_size
            except OSError:
                offset = 0
        self.offset = offset
        self._carry = b""
        self._tail = ""

    def read_new(self) -> bytes:
        """Bytes appended since the previous read (at most the last 4 MiB of them)."""
        carry, self._carry = self._carry, b""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return carry
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # a FIFO or device planted in its place: nothing to read
                return carry
            size = info.st_size
            if size < self.offset:  # truncated behind our back: start over
                self.offset = 0
            start = max(self.offset, size - _READ_LIMIT)
            data = os.pread(fd, size - start, start) if size > start else b""
            self.offset = start + len(data)
        finally:
            os.close(fd)
        return carry + data if carry else data

    def search(self, pattern: re.Pattern[str]) -> bool:
        """Whether ``pattern`` matches a line appended since the previous search (a line cut by a read
        boundary is joined up with its end)."""
        text = self._tail + self.read_new().decode("utf-8", errors="replace")
        cut = text.rfind("\n") + 1
        self._tail = text[cut:][-_TAIL_LIMIT:]
        return any(pattern.search(line) for line in text.splitlines())

    def rotated(self, backup: Path | None, size: int) -> None:
        """The first ``size`` bytes moved to ``backup`` and the file restarted: keep the unread part."""
        if backup is not None and self.offset < size:
            with contextlib.suppress(OSError), _open_nofollow(backup) as f:
                start = max(self.offset, size - _READ_LIMIT)
                f.seek(start)
                self._carry += f.read(size - start)
        self.offset = 0


@dataclass(slots=True, eq=False)
class Rotation:
    """What one rotation did."""

    size: int  # bytes moved out of the live file
    backup: Path | None  # where they went (None when no backups are kept)
    frozen: int  # processes paused for the final copy
    paused: float  # seconds they were paused


def _open_nofollow(path: Path) -> BinaryIO:
    """``path`` opened for reading, a symlink refused: the logs are the daemon's, a symlink a plant."""
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")


def needs_rotation(path: Path, policy: LogPolicy) -> bool:
    try:
        return path.stat().st_size >= policy.max_bytes
    except OSError:
        return False


def rotate(path: Path, policy: LogPolicy, members: Callable[[], Mapping[int, int]]) -> Rotation | None:
    """Rotate ``path`` if it reached ``policy.max_bytes``; blocking, meant for a worker thread.

    ``members`` returns the processes that may be writing to it (pid → start ticks). Returns None when the
    file is below the limit, or when the writers could not all be paused (nothing is changed then).
    """
    if not needs_rotation(path, policy):
        return None
    if policy.backups == 0:
        size = path.stat().st_size
        os.truncate(path, 0)
        return Rotation(size=size, backup=None, frozen=0, paused=0.0)
    side = path.with_name(f".{path.name}.rotating")
    src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            bulk = os.fstat(src).st_size
            _copy(src, dst, 0, bulk)
            paused_at = time.monotonic()
            fds, ok = _freeze(members())
            try:
                if not ok:
                    raise _FreezeFailed
                size = os.fstat(src).st_size
                _copy(src, dst, bulk, size)
                os.truncate(path, 0)
            finally:
                _thaw(fds)
            paused = time.monotonic() - paused_at
        finally:
            os.close(dst)
    except _FreezeFailed:
        side.unlink(missing_ok=True)
        return None
    except BaseException:
        side.unlink(missing_ok=True)
        raise
    finally:
        os.close(src)
    for n in range(policy.backups - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(backup_path(path, n), backup_path(path, n + 1))
    first = backup_path(path, 1)
    os.replace(side, first)
    return Rotation(size=size, backup=first, frozen=len(fds), paused=paused)


class _FreezeFailed(Exception):
    pass


def _copy(src: int, dst: int, start: int, end: int) -> None:
    offset = start
    while offset < end:
        want = min(_COPY_CHUNK, end - offset)
        try:
            n = os.copy_file_range(src, dst, want, offset, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            data = os.pread(src, want, offset)
            n = os.pwrite(dst, data, offset)
        if n == 0:
            break
        offset += n


def _all_stopped(pid: int) -> bool:
    """Every thread stopped (or the process gone)."""
    return all(state in _STOPPED for state in procfs.thread_states(pid))


def _freeze(members: Mapping[int, int]) -> tuple[list[int], bool]:
    fds: list[int] = []
    pending: set[int] = set()
    for pid, ticks in members.items():
        opened = pidfd.open_verified(pid, ticks)
        if opened is None:
            continue
        fd = opened[0]
        fds.append(fd)
        pending.add(pid)
        pidfd.send_signal(fd, signal.SIGSTOP)
    deadline = time.monotonic() + _FREEZE_WAIT
    while pending:
        pending = {pid for pid in pending if not _all_stopped(pid)}
        if not pending:
            break
        if time.monotonic() > deadline:
            return fds, False
        time.sleep(0.0002)
    return fds, True


def _thaw(fds: list[int]) -> None:
    for fd in fds:
        pidfd.send_signal(fd, signal.SIGCONT)
        os.close(fd)
