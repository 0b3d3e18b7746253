"""Reading a file under the home, which is input like any other: it may be a FIFO, a device, a symlink
loop or huge, and none of those may block or exhaust the daemon.

The file is opened without waiting (``O_NONBLOCK``: a FIFO with no writer opens at once), checked with
``fstat`` to be a regular file, and read to at most ``limit`` bytes. Every refusal is an `OSError` whose
``strerror`` says why, so a caller that already turns ``OSError`` into its own error handles these too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["FileTooLarge", "NotRegularFile", "read_bytes", "read_bytes_off_loop", "read_text"]


class NotRegularFile(OSError):
    """The path names a FIFO, socket or device where a regular file was expected."""


class FileTooLarge(OSError):
    """The file holds more than the reader's limit."""


def read_bytes(path: str | os.PathLike[str], *, limit: int, follow_symlinks: bool = True) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes.

    ``follow_symlinks=False`` refuses a symlink at the last component (``ELOOP``): for files only the
    supervisor writes, where a symlink can only be a plant.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({_kind(info.st_mode)})", os.fspath(path))
        if info.st_size > limit:
            raise FileTooLarge(errno.EFBIG, f"larger than {limit} bytes", os.fspath(path))
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:  # grew past the limit while being read
        raise FileTooLarge(errno.EFBIG, f"larger than {limit} bytes", os.fspath(path))
    return b"".join(chunks)


def read_text(path: str | os.PathLike[str], *, limit: int, follow_symlinks: bool = True) -> str:
    """`read_bytes` decoded as UTF-8 (raises `UnicodeDecodeError`)."""
    return read_bytes(path, limit=limit, follow_symlinks=follow_symlinks).decode("utf-8")


async def read_bytes_off_loop(path: Path, *, limit: int, follow_symlinks: bool = True) -> bytes:
    """`read_bytes` in a worker thread, so that a slow disk never stalls the event loop."""
    import anyio.to_thread  # only the daemon reads off its loop; eyriectl's quick path never pays for anyio

    def read() -> bytes:
        return read_bytes(path, limit=limit, follow_symlinks=follow_symlinks)

    return await anyio.to_thread.run_sync(read)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"
