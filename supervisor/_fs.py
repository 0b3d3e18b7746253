"""Durable file writes and cross-process locks: the two things every writer under the home needs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir", "locked", "write_new"]

_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
"""A new file of our own, never one planted at its name. Temporary files take a random name and these flags
rather than ``tempfile.mkstemp``, whose name generation and checks were half of a state write's time."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old file or the new one, never a torn one.

    Temp file in the same directory, fsync, rename over, fsync the directory. ``durable=False`` leaves out
    both fsyncs: readers still see one whole file or the other, but after a power loss the file may hold
    its previous contents (or be empty), so only state that a reboot makes stale anyway may use it.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, _NEW_FLAGS, 0o600)
    try:
        _fill(fd, data, mode, durable=durable)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_new(path: Path, data: bytes | str, mode: int, *, durable: bool = True) -> None:
    """Create ``path`` and write ``data`` durably, never following a symlink or replacing a file.

    For files built inside a directory that is then renamed into place (that rename is what readers see at
    once); a file already there is an error, not something to overwrite. ``durable=False`` leaves the
    fsync to the caller, who syncs the whole directory before renaming it.
    """
    fd = os.open(path, _NEW_FLAGS, mode)
    try:
        _fill(fd, data, mode, durable=durable)
    finally:
        os.close(fd)


def _fill(fd: int, data: bytes | str, mode: int, *, durable: bool) -> None:
    """Give a freshly created file its ``mode`` (the umask filtered the one it was created with) and all of
    ``data``, fsynced when ``durable``."""
    os.fchmod(fd, mode)
    view = memoryview(data.encode() if isinstance(data, str) else data)
    while view:
        view = view[os.write(fd, view) :]
    if durable:
        os.fsync(fd)


@contextlib.contextmanager
def locked(lock_path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[None]:
    """Hold an ``flock`` on ``lock_path`` (created 0600) for the duration of the block.

    ``wait=False`` raises `BlockingIOError` at once when another holder has it. A symlink planted at
    ``lock_path`` is refused (``ELOOP``), never followed.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        yield
    finally:
        os.close(fd)
