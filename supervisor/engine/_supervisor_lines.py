"""The supervisor's own lines about an instance, written into that instance's log file among the agent's
output, as journald interleaves systemd's "Started …" lines: ``2026-11-30T15:04:05.123Z eyried: started pid
4242``. ``eyriectl logs`` then tells the whole story of a crash, a restart or a stop.

A line is one small ``O_APPEND`` write on the event loop (no thread, no await): the kernel appends it whole,
between the child's own writes. A spawn's lines (the exit held back while a restart without delay spawned,
then ``started pid``) go through the descriptor the spawn opened for the child's output, and the lines of one
turn of the event loop through one open of the file (one system call per line: each call lets the worker
threads take the GIL, which in a crowd of spawns made four calls per line cost ~0.2 ms). The descriptor is
let go at the end of that turn: held for as long as the instance runs, it was one more descriptor per
instance that every spawn's child inherits and closes (half of the ~2,000 at N = 1000). While a rotation
copies the file and truncates it in place, lines wait in memory and are written once it is done, so the
truncation never drops one. A symlink, FIFO or device planted at the path is never written through, and a
line that cannot be written is dropped (the daemon's own log has it anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["MARK", "SupervisorLines", "format_line"]

MARK = "eyried:"
"""What follows the timestamp on every supervisor line: the agent's lines never come from eyried."""

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_HELD_MAX = 1000
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


def format_line(text: str, now: datetime | None = None) -> bytes:
    """One timestamped supervisor line; control characters in ``text`` (a newline in an error) are escaped
    so that it stays one line and cannot drive a terminal."""
    moment = now or datetime.now(UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp} {MARK} {text.translate(_CONTROL)}\n".encode("utf-8", errors="replace")


class SupervisorLines:
    """Writes supervisor lines into one instance's log, holding them back while a rotation runs."""

    def __init__(self) -> None:
        self._held: list[bytes] | None = None
        self._fd: int | None = None
        self._path: Path | None = None

    def write(self, path: Path, text: str) -> None:
        line = format_line(text)
        if self._held is not None:
            if len(self._held) < _HELD_MAX:
                self._held.append(line)
            return
        self._append(path, line)

    def close(self) -> None:
        """Let go of the file; the next line opens ``path`` again (a new spawn's file, or none)."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._path = None

    def take(self, path: Path, fd: int) -> None:
        """Write this turn's lines through ``fd``, ``path`` opened to append (a new child's log, as the spawn
        opened it): a spawn costs no second open of the file."""
        self.close()
        self._hold(path, fd)

    def _hold(self, path: Path, fd: int) -> None:
        """Keep ``fd`` until the event loop's current turn is over (for good where no loop runs)."""
        self._fd, self._path = fd, path
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self._let_go, fd)

    def _let_go(self, fd: int) -> None:
        if self._fd == fd:
            self.close()

    @contextlib.contextmanager
    def held(self, path: Path) -> Iterator[None]:
        """Keep lines in memory meanwhile (a rotation of ``path``), then write them in one go."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self._append(path, b"".join(held))

    def _append(self, path: Path, data: bytes) -> None:
        fd = self._fd
        if self._path != path or fd is None:
            self.close()
            fd = _open_regular(path)
            if fd is None:
                return
            self._hold(path, fd)
        try:
            os.write(fd, data)
        except OSError:
            self.close()


def _open_regular(path: Path) -> int | None:
    """``path`` opened to append, or None when it cannot be or is not a regular file."""
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except OSError:
        return None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None
