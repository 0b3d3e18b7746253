"""Values derived from files, kept until the file changes: the API lists the fleet on every ``eyriectl ps``,
and re-reading the fleet file and hashing every config file each time would cost more than the listing."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["StatCache"]

T = TypeVar("T")

_FileKey = tuple[int, int, int, int]  # device, inode, size, mtime in ns


class StatCache(Generic[T]):
    """One value per path, recomputed when the file's device, inode, size or mtime is no longer the one it
    was computed for (a file replaced by a rename has a new inode; one edited in place, a new mtime)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[_FileKey, T]] = {}

    def get(self, path: str | os.PathLike[str], compute: Callable[[], T]) -> T | None:
        """``compute()`` for the file as it is now, or the value kept for it; None if it cannot be stat'ed."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._entries.get(os.fspath(path))
        if cached is None or cached[0] != key:
            cached = (key, compute())
            self._entries[os.fspath(path)] = cached
        return cached[1]
