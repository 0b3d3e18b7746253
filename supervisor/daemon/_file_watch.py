"""Which of a set of files changed since the last look, told by the kernel (inotify) rather than found by a
``stat`` of each: a listing at N = 1000 stat'ed 1,000 config files to tell that none had changed.

A watch is on the file itself (not its directory, where ``instance.json`` is rewritten on every transition):
written in place, its attributes or link count changed (replaced by a rename, removed), moved or deleted, the
file is reported changed. A path with no watch (the file did not exist, the kernel refused one more watch, no
inotify at all) is never vouched for: its caller stats it as before. A directory above the file moved away is
not seen; the store's instance directories are the daemon's own.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import weakref

__all__ = ["FileWatch"]

_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVE_SELF = 0x800
_IN_DELETE_SELF = 0x400
_IN_DONT_FOLLOW = 0x2000000
_IN_Q_OVERFLOW = 0x4000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVE_SELF | _IN_DELETE_SELF | _IN_DONT_FOLLOW
_HEADER = struct.Struct("iIII")
_READ = 64 * 1024


class FileWatch:
    """The paths it watches and whether each is unchanged since it was watched; `changed` drains the kernel's
    queue of events once per look."""

    def __init__(self) -> None:
        self._by_wd: dict[int, set[str]] = {}
        self._wd_of: dict[str, int] = {}
        self._fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._add = libc.inotify_add_watch
            self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
            self._add.restype = ctypes.c_int
            self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return
        if self._fd >= 0:
            weakref.finalize(self, os.close, self._fd)

    def watch(self, path: str) -> bool:
        """Watch ``path`` (before reading it: a change after this is reported); False when it cannot be."""
        if self._fd < 0:
            return False
        wd = self._add(self._fd, os.fsencode(path), _MASK)
        if wd < 0:
            return False  # missing, or the kernel's watch limit: the caller stats it
        self._wd_of[path] = wd
        self._by_wd.setdefault(wd, set()).add(path)
        return True

    def watched(self, path: str) -> bool:
        """Whether ``path`` is watched and nothing happened to it since `changed` last looked."""
        return path in self._wd_of

    def changed(self) -> set[str]:
        """Read what the kernel queued: the paths it names changed, and are no longer vouched for until
        watched again (the kernel keeps the watch of a file still there: watching it again finds the same
        one). An overflowed queue leaves none vouched for, and names none: a caller stats them all."""
        changed: set[str] = set()
        if self._fd < 0:
            return changed
        while True:
            try:
                data = os.read(self._fd, _READ)
            except BlockingIOError:
                return changed
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size + length
                if mask & _IN_Q_OVERFLOW:
                    for known in list(self._by_wd):
                        self._forget(known)
                else:
                    changed |= self._forget(wd)

    def _forget(self, wd: int) -> set[str]:
        paths = self._by_wd.pop(wd, set())
        for path in paths:
            if self._wd_of.get(path) == wd:
                del self._wd_of[path]
        return paths
