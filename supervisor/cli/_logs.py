"""``logs``: an instance's output, read straight from ``instances/<id>/logs/<framework>.log``.

No daemon is involved, so logs stay readable while eyried is down. ``-f`` follows the file across rotation:
when the name points to a new file, the rest of the old one is read first, then the new one from its start;
a file truncated in place is read again from its start.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from pathlib import Path
from typing import BinaryIO

import click

from supervisor.cli._app import Cli, CommandFailed
from supervisor.cli._complete import complete_instance_names
from supervisor.store import Store

__all__ = ["log_path", "logs", "tail"]

_BLOCK = 64 * 1024
_POLL = 0.2


def log_path(cli: Cli, name: str) -> Path:
    store = Store(cli.home)
    inst = store.get_by_name(name)
    return store.dir(inst.id) / "logs" / f"{inst.framework}.log"


def tail(f: BinaryIO, lines: int) -> bytes:
    """The last ``lines`` lines of ``f`` (read backwards in blocks); leaves ``f`` at its end."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return b""
    data = b""
    position = end
    while position > 0 and data.count(b"\n") <= lines:
        step = min(_BLOCK, position)
        position -= step
        f.seek(position)
        data = f.read(step) + data
    f.seek(end)
    kept = data.splitlines(keepends=True)[-lines:]
    return b"".join(kept)


def _write(data: bytes) -> None:
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _open_log(path: Path) -> BinaryIO:
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


def _follow(path: Path, f: BinaryIO | None) -> None:
    """Print what is appended to ``path`` until interrupted, across rotation and truncation."""
    try:
        while True:
            if f is None:
                try:
                    f = _open_log(path)
                except FileNotFoundError:
                    time.sleep(_POLL)
                    continue
            chunk = f.read(_BLOCK)
            if chunk:
                _write(chunk)
                continue
            try:
                current = path.stat()
            except FileNotFoundError:
                time.sleep(_POLL)  # between the rename and the new file: keep the old one open
                continue
            if current.st_ino != os.fstat(f.fileno()).st_ino:
                _write(f.read())  # what reached the old file before it was rotated away
                f.close()
                f = None
            elif current.st_size < f.tell():
                f.seek(0)  # truncated in place
            else:
                time.sleep(_POLL)
    finally:
        if f is not None:
            f.close()


@click.command()
@click.argument("name", shell_complete=complete_instance_names)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output, across log rotation.")
@click.option(
    "-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True, help="Lines of history."
)
@click.pass_obj
def logs(cli: Cli, name: str, follow: bool, lines: int) -> None:
    """Print an instance's log (the agent's stdout and stderr). Works while eyried is down.

    \b
    Examples:
      eyriectl logs scout-sam
      eyriectl logs scout-sam -n 200
      eyriectl logs scout-sam -f
    """
    path = log_path(cli, name)
    f: BinaryIO | None = None
    try:
        f = _open_log(path)
    except FileNotFoundError:
        if not follow:
            cli.note(f"{name} has no log yet ({path})")
            return
    if not follow:
        assert f is not None
        with f:
            _write(tail(f, lines))
        return
    try:
        if f is not None:
            _write(tail(f, lines))
        _follow(path, f)
    except KeyboardInterrupt:
        return
