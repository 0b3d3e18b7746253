"""Reading an instance's log file safely: a FIFO, device or symlink planted at the path is refused rather than
waited on or followed, history is read from a bounded tail (a huge line cannot hang it), and a followed file
is tracked across rotation and truncation."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from supervisor.cli._app import CommandFailed

__all__ = ["BLOCK", "LINE_MAX", "Followed", "last_lines", "line_text", "open_log", "tail"]

BLOCK = 64 * 1024
_TAIL_BYTES = 8 << 20
"""History reads at most this much from the end of a file, whatever the lines: a huge line cannot hang it."""
LINE_MAX = 16 * 1024
"""A longer line is cut when shown as text or JSON."""


def tail(f: BinaryIO, lines: int) -> bytes:
    """The last ``lines`` lines of ``f`` (read backwards, at most 8 MiB); leaves ``f`` at its end."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return b""
    data = b""
    position = end
    while position > 0 and data.count(b"\n") <= lines and end - position < _TAIL_BYTES:
        step = min(BLOCK, position)
        position -= step
        f.seek(position)
        data = f.read(step) + data
    f.seek(end)
    kept = data.splitlines(keepends=True)[-lines:]
    return b"".join(kept)


def last_lines(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of the log at ``path``, as text (not yet escaped)."""
    try:
        f = open_log(path)
    except CommandFailed as exc:
        raise OSError(exc.message) from None
    with f:
        return [line_text(line) for line in tail(f, lines).splitlines()]


def line_text(line: bytes) -> str:
    if len(line) > LINE_MAX:
        line = line[:LINE_MAX] + f"… ({len(line) - LINE_MAX} bytes cut)".encode()
    return line.decode("utf-8", errors="replace")


def open_log(path: Path) -> BinaryIO:
    """The log for reading; a FIFO or device planted in its place is refused instead of waited on, and a
    symlink is refused rather than followed (the logs are the daemon's)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CommandFailed(f"{path} is a symlink; move it away") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CommandFailed(f"{path} is not a regular file; move it away")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class Followed:
    """One followed log file: what was appended since the last `read`, across rotation and truncation."""

    def __init__(self, path: Path, f: BinaryIO | None) -> None:
        self.path = path
        self.f = f

    def read(self) -> bytes:
        if self.f is None:
            try:
                self.f = open_log(self.path)
            except (OSError, CommandFailed):
                return b""
        chunk = self.f.read(BLOCK)
        if chunk:
            return chunk
        try:
            current = self.path.stat()
        except FileNotFoundError:
            return b""  # between the rename and the new file: keep the old one open
        if current.st_ino != os.fstat(self.f.fileno()).st_ino:
            rest = self.f.read()  # what reached the old file before it was rotated away
            self.close()
            return rest
        if current.st_size < self.f.tell():
            self.f.seek(0)  # truncated in place
        return b""

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
