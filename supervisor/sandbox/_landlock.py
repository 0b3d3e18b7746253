"""The Landlock system calls and constants (``linux/landlock.h``), reached through ctypes.

Only the parent calls `create_ruleset`, `add_path_rule` and `add_port_rule`; the child calls the prepared
`restrict_self` function pointer alone.
"""

from __future__ import annotations

import ctypes
import errno
import os

__all__ = [
    "ACCESS_FS_BY_ABI",
    "FILE_ACCESS",
    "LIBC",
    "NET_BIND_TCP",
    "READ",
    "READ_EXEC",
    "SCOPE_ABSTRACT_UNIX_SOCKET",
    "SCOPE_SIGNAL",
    "SYS_RESTRICT_SELF",
    "WRITE_FILE",
    "abi_version",
    "add_path_rule",
    "add_port_rule",
    "create_ruleset",
]

LIBC = ctypes.CDLL(None, use_errno=True)

# the same numbers on every architecture: these calls came after the syscall tables were unified
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446

_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
_ABI1 = (1 << 13) - 1  # execute … make_sym
_REFER = 1 << 13  # ABI 2
_TRUNCATE = 1 << 14  # ABI 3
_IOCTL_DEV = 1 << 15  # ABI 5

READ = READ_FILE | READ_DIR
READ_EXEC = READ | EXECUTE
FILE_ACCESS = EXECUTE | WRITE_FILE | READ_FILE | _TRUNCATE | _IOCTL_DEV
"""The rights that apply to a file (not a directory): a rule on a file may grant only these."""

ACCESS_FS_BY_ABI = {
    1: _ABI1,
    2: _ABI1 | _REFER,
    3: _ABI1 | _REFER | _TRUNCATE,
    4: _ABI1 | _REFER | _TRUNCATE,
    5: _ABI1 | _REFER | _TRUNCATE | _IOCTL_DEV,
}
"""Every filesystem right each ABI knows (later ABIs add none)."""

NET_BIND_TCP = 1 << 0  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


def _syscall(*args: object) -> int:
    result: int = LIBC.syscall(*args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI, 0 when it has none (too old, or Landlock not enabled at boot)."""
    try:
        return _syscall(
            ctypes.c_long(_SYS_CREATE_RULESET),
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(_CREATE_RULESET_VERSION),
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
            return 0
        raise


def create_ruleset(access_fs: int, access_net: int, scoped: int) -> int:
    """A new ruleset (a close-on-exec fd) that handles these rights and scopes."""
    attr = _RulesetAttr(access_fs, access_net, scoped)
    return _syscall(
        ctypes.c_long(_SYS_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
        ctypes.c_uint32(0),
    )


def add_path_rule(ruleset: int, path_fd: int, access: int) -> None:
    """Grant ``access`` beneath the file or directory open (``O_PATH``) as ``path_fd``."""
    attr = _PathBeneathAttr(access, path_fd)
    _syscall(
        ctypes.c_long(_SYS_ADD_RULE),
        ctypes.c_int(ruleset),
        ctypes.c_int(_RULE_PATH_BENEATH),
        ctypes.byref(attr),
        ctypes.c_uint32(0),
    )


def add_port_rule(ruleset: int, port: int, access: int) -> None:
    """Grant ``access`` (``NET_BIND_TCP``) on one TCP port."""
    attr = _NetPortAttr(access, port)
    _syscall(
        ctypes.c_long(_SYS_ADD_RULE),
        ctypes.c_int(ruleset),
        ctypes.c_int(_RULE_NET_PORT),
        ctypes.byref(attr),
        ctypes.c_uint32(0),
    )
