"""An unconfined child started by the C library's ``posix_spawn``: the daemon's quickest way to an exec.

``subprocess.Popen`` (``vfork``) spends as long in Python before its fork as the kernel spends on the fork
and exec: it encodes the environment item by item, makes a pipe to hear about a failed exec and reads it
after. glibc's ``posix_spawn`` clones with ``CLONE_VM | CLONE_VFORK`` as well and reports a failed exec as
its return value. Python 3.11's ``os.posix_spawn`` cannot change the working directory or close inherited
descriptors, so the C functions are called through ctypes, with glibc's ``addchdir_np`` and
``addclosefrom_np`` (glibc 2.34; `AVAILABLE` is False without them, and the caller uses ``Popen``).

The child starts in a session of its own, with no signal blocked and every signal at its default action
(none ignored, whatever the daemon was started with), stdin from /dev/null, stdout and stderr on the log,
no other descriptor, in its working directory.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Mapping, Sequence
from typing import cast

__all__ = ["AVAILABLE", "posix_spawn"]

_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80
_FLAGS = _SETSIGDEF | _SETSIGMASK | _SETSID
_OPAQUE = 1024
"""Bytes reserved for each of glibc's opaque structures (80 and 336 bytes on x86_64; 128 for a sigset)."""

_Function = Callable[..., int]


class _Calls:
    """The C library's functions, and the attributes every child shares, made once."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        def function(name: str) -> _Function:
            found = getattr(libc, name)
            found.restype = ctypes.c_int
            return cast(_Function, found)

        self.spawn = function("posix_spawn")
        self.actions_init = function("posix_spawn_file_actions_init")
        self.actions_destroy = function("posix_spawn_file_actions_destroy")
        self.add_open = function("posix_spawn_file_actions_addopen")
        self.add_dup2 = function("posix_spawn_file_actions_adddup2")
        self.add_chdir = function("posix_spawn_file_actions_addchdir_np")
        self.add_closefrom = function("posix_spawn_file_actions_addclosefrom_np")
        self.attr = ctypes.create_string_buffer(_OPAQUE)
        empty = ctypes.create_string_buffer(_OPAQUE)
        # every bit set, glibc's own signals included (sigfillset leaves them out, and the child would
        # then start with them ignored)
        every = ctypes.create_string_buffer(b"\xff" * _OPAQUE, _OPAQUE)
        _check(function("posix_spawnattr_init")(self.attr))
        _check(function("posix_spawnattr_setsigmask")(self.attr, empty))
        _check(function("posix_spawnattr_setsigdefault")(self.attr, every))
        _check(function("posix_spawnattr_setflags")(self.attr, ctypes.c_short(_FLAGS)))


def _check(result: int) -> None:
    if result != 0:
        raise OSError(result, os.strerror(result))


def _load() -> _Calls | None:
    try:
        # with the GIL held throughout: letting go of it around each call could cost a switch interval
        # (5 ms) to get it back from a busy worker thread, and a spawn is over in a fraction of that
        return _Calls(ctypes.PyDLL(None, use_errno=True))
    except (AttributeError, OSError):
        return None


_CALLS = _load()
AVAILABLE = _CALLS is not None
"""Whether this C library has every function used here."""

_DEV_NULL = os.devnull.encode()


def _array(items: list[bytes]) -> ctypes.Array[ctypes.c_char_p]:
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)


def posix_spawn(
    executable: str, argv: Sequence[str], env: Mapping[str, str], *, cwd: str, log_fd: int
) -> int:
    """Start ``executable`` with ``argv`` and exactly ``env`` in ``cwd``, output appended to ``log_fd``; its
    pid once it has exec'd. `OSError` with the errno of what failed (the exec, the change of directory)."""
    calls = _CALLS
    assert calls is not None, "the caller checks AVAILABLE"
    argv_c = _array([os.fsencode(arg) for arg in argv])
    env_c = _array([os.fsencode(f"{key}={value}") for key, value in env.items()])
    actions = ctypes.create_string_buffer(_OPAQUE)
    pid = ctypes.c_int(0)
    _check(calls.actions_init(actions))
    try:
        # the log first: were it fd 0, opening /dev/null there must come after its copies
        _check(calls.add_dup2(actions, log_fd, 1))
        _check(calls.add_dup2(actions, log_fd, 2))
        _check(calls.add_open(actions, 0, _DEV_NULL, os.O_RDONLY, 0))
        _check(calls.add_chdir(actions, os.fsencode(cwd)))
        _check(calls.add_closefrom(actions, 3))
        _check(calls.spawn(ctypes.byref(pid), os.fsencode(executable), actions, calls.attr, argv_c, env_c))
    finally:
        calls.actions_destroy(actions)
    if pid.value <= 0:
        raise OSError(errno.ECHILD, "posix_spawn reported no child")
    return pid.value
