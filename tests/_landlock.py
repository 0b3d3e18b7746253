"""The least Landlock domain that shows the operator's abstract socket is out of an agent's reach: one that
handles no file or network access at all and only scopes abstract Unix sockets (ABI 6).

Call `scope_abstract_unix_sockets` in a child (a ``preexec_fn``): from then on that process and its
descendants cannot connect to an abstract socket bound outside their domain.
"""

from __future__ import annotations

import ctypes
import os
import struct

__all__ = ["SCOPE_ABI", "landlock_abi", "scope_abstract_unix_sockets", "set_no_new_privs"]

SCOPE_ABI = 6
"""The first Landlock ABI with scopes."""

_SYS_CREATE_RULESET = 444
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_PR_SET_NO_NEW_PRIVS = 38
_RULESET_ATTR = struct.Struct("QQQ")  # handled_access_fs, handled_access_net, scoped

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has no Landlock."""
    abi = _libc.syscall(
        _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
    )
    return max(int(abi), 0)


def scope_abstract_unix_sockets() -> None:
    """Set ``no_new_privs`` and enter a Landlock domain scoping abstract Unix sockets; raise if refused."""
    set_no_new_privs()
    attr = ctypes.create_string_buffer(_RULESET_ATTR.pack(0, 0, _SCOPE_ABSTRACT_UNIX_SOCKET))
    fd = _libc.syscall(_SYS_CREATE_RULESET, attr, ctypes.c_size_t(_RULESET_ATTR.size), ctypes.c_uint32(0))
    if fd < 0:
        _raise()
    try:
        if _libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            _raise()
    finally:
        os.close(fd)


def set_no_new_privs() -> None:
    """``prctl(PR_SET_NO_NEW_PRIVS, 1)``, as every confined agent has it."""
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _raise()


def _raise() -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))
