"""Values derived from files, kept until the file changes: the API lists the fleet on every ``eyriectl ps``,
and re-reading the fleet file and hashing every config file each time would cost more than the listing.
With a `FileWatch`, a file the kernel watches and reported nothing about is not even stat'ed."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, TypeVar

from supervisor.daemon._file_watch import FileWatch

__all__ = ["FileKey", "StatCache", "file_key"]

T = TypeVar("T")

FileKey = tuple[int, int, int, int]  # device, inode, size, mtime in ns


class StatCache(Generic[T]):
    """One value per path, recomputed when the file's device, inode, size or mtime is no longer the one it
    was computed for (a file replaced by a rename has a new inode; one edited in place, a new mtime).
    ``watch``: files it vouches for unchanged since their value was computed are answered without a stat."""

    def __init__(self, watch: FileWatch | None = None) -> None:
        self._entries: dict[str, tuple[FileKey, T]] = {}
        self._watch = watch

    def refresh(self) -> None:
        """Take in what the watch saw change (its values are computed again, whatever a stat says): once per
        look at a batch of files, before the first `kept`."""
        if self._watch is not None:
            for path in self._watch.changed():
                self._entries.pop(path, None)

    def get(self, path: str | os.PathLike[str], compute: Callable[[], T]) -> T | None:
        """``compute()`` for the file as it is now, or the value kept for it; None if it cannot be stat'ed."""
        key = file_key(path)
        if key is None:
            return None
        cached = self._entries.get(os.fspath(path))
        if cached is None or cached[0] != key:
            cached = (key, compute())
            self._entries[os.fspath(path)] = cached
        return cached[1]

    def put(self, path: str | os.PathLike[str], key: FileKey, value: T) -> None:
        """Keep ``value``, computed by the caller from the file as `file_key` found it (``key``, taken before
        the read): what the daemon's start read is not read again by its first listing."""
        self._entries[os.fspath(path)] = (key, value)

    def kept(self, path: str | os.PathLike[str]) -> tuple[bool, T | None]:
        """Whether `get` would answer without computing, and its answer, by one ``stat``: a caller on the
        event loop computes in a worker thread only when the file changed. A watched path is watched
        before its ``stat``, so a change after it is reported."""
        if self._watch is not None:
            name = os.fspath(path)
            if self._watch.watched(name) and name in self._entries:
                return True, self._entries[name][1]
            self._watch.watch(name)
        key = file_key(path)
        if key is None:
            return True, None
        cached = self._entries.get(os.fspath(path))
        if cached is None or cached[0] != key:
            return False, None
        return True, cached[1]


def file_key(path: str | os.PathLike[str]) -> FileKey | None:
    """The file's device, inode, size and mtime; None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
