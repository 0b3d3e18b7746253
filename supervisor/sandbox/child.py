"""The confinement a child applies to itself between fork and exec (in a clone of the spawn helper,
`supervisor.sandbox.spawner`).

Everything is prepared before the fork (function pointers, argument objects, the ruleset fd), so the child
only makes system calls: no imports, no large allocations, no locks, no logging. In order: no_new_privs
(inherited by every descendant, and needed to restrict an unprivileged process); for root, every
capability out of the bounding and ambient sets and the effective, permitted and inheritable sets emptied,
so the program executed gains none; then ``landlock_restrict_self`` on the inherited ruleset.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.sandbox._landlock import SYS_RESTRICT_SELF

if TYPE_CHECKING:
    from supervisor.sandbox.spawner import SpawnHelper

__all__ = ["Confiner"]

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


_Call = tuple[Callable[..., int], tuple[object, ...]]

_LIBC = ctypes.PyDLL(None, use_errno=True)
"""The C library, called with the GIL held: each call is a few microseconds, and a call that let go of the
GIL could wait a switch interval (5 ms) for it behind a busy worker thread."""


def _prctl(option: int, arg: int) -> _Call:
    ulong = ctypes.c_ulong
    return _LIBC.prctl, (ctypes.c_int(option), ulong(arg), ulong(0), ulong(0), ulong(0))


@functools.cache
def _common_calls(drop_capabilities: bool) -> tuple[_Call, ...]:
    """The calls every child makes, built once for the process: a root daemon's capability drop is ~40
    calls of five ctypes arguments each, ~34 KB that each instance would otherwise hold a copy of."""
    calls: list[_Call] = [_prctl(_PR_SET_NO_NEW_PRIVS, 1)]
    if drop_capabilities:
        calls += [_prctl(_PR_CAPBSET_DROP, cap) for cap in range(_last_cap() + 1)]
        calls.append(_prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL))
        header = _CapHeader(_CAP_VERSION_3, 0)
        data = (_CapData * 2)()
        calls.append((_LIBC.capset, (ctypes.byref(header), ctypes.byref(data))))
    return tuple(calls)


_RESTRICT_SELF = ctypes.c_long(SYS_RESTRICT_SELF)
_NO_FLAGS = ctypes.c_uint32(0)
"""The Landlock call's arguments that are the same for every instance: only the ruleset fd is its own."""
_SYSCALL = _LIBC.syscall
_get_errno = ctypes.get_errno
_strerror = os.strerror


class Confiner:
    """The calls above, with their arguments built now, in the parent; called in the child before exec.

    ``ruleset`` is a Landlock ruleset fd (-1: the kernel has none); ``drop_capabilities`` is for a root
    daemon. A failing call raises `OSError` (the spawn then fails: a child is never left half confined).
    ``helper`` is the spawn helper that forks a child confined so (`spawn`). One is kept per confined
    instance, so it holds only what is its own (slotted, the shared calls and arguments shared).
    """

    __slots__ = ("_common", "_drop_capabilities", "_helper", "_restrict", "_ruleset")

    def __init__(self, ruleset: int, *, drop_capabilities: bool, helper: SpawnHelper | None = None) -> None:
        self._ruleset = ruleset
        self._drop_capabilities = drop_capabilities
        self._helper = helper
        self._common = _common_calls(drop_capabilities)  # shared, not copied into a tuple of its own
        self._restrict = (_RESTRICT_SELF, ctypes.c_int(ruleset), _NO_FLAGS) if ruleset >= 0 else None

    def spawn(
        self,
        argv: Sequence[str],
        executable: str,
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_fd: int,
        open_files: tuple[int, int] | None = None,
    ) -> int:
        """Start a child confined so, through the spawn helper; its pid (see `SpawnHelper.spawn`)."""
        assert self._helper is not None, "a confiner of the spawn helper's own"
        return self._helper.spawn(
            argv,
            executable,
            env=env,
            cwd=cwd,
            log_fd=log_fd,
            open_files=open_files,
            ruleset=self._ruleset,
            drop_capabilities=self._drop_capabilities,
        )

    def __call__(self) -> None:
        for function, args in self._common:
            _check(function(*args))
        if self._restrict is not None:
            _check(_SYSCALL(*self._restrict))


def _check(result: int) -> None:
    if result < 0:
        err = _get_errno()
        raise OSError(err, _strerror(err))
