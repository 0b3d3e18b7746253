"""Runs a program with one system call refused, as an old kernel or a container's seccomp profile refuses it.

    refuse_syscall.py NUMBER ERRNO PROGRAM [ARG...]

Installs a seccomp filter that answers system call NUMBER with ERRNO (by name: ``ENOSYS``, ``EPERM``) and
execs PROGRAM; the filter holds for it and every process it starts. Exits 2 when the filter cannot be
installed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_LOAD_NR = 0x20  # BPF_LD | BPF_W | BPF_ABS, offset 0: seccomp_data.nr
_JUMP_IF_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def refuse(number: int, code: int) -> None:
    """Answer system call ``number`` with ``code`` from now on, in this process and what it execs."""
    steps = (_Instruction * 4)(
        _Instruction(_LOAD_NR, 0, 0, 0),
        _Instruction(_JUMP_IF_EQUAL, 0, 1, number),
        _Instruction(_RETURN, 0, 0, _SECCOMP_RET_ERRNO | code),
        _Instruction(_RETURN, 0, 0, _SECCOMP_RET_ALLOW),
    )
    program = _Program(len(steps), steps)
    libc = ctypes.CDLL(None, use_errno=True)
    for args in (
        (_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(program), 0, 0),
    ):
        if libc.prctl(*(ctypes.c_ulong(a) for a in args)) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def main() -> None:
    number, name, *argv = sys.argv[1:]
    try:
        refuse(int(number), getattr(errno, name))
    except OSError as exc:
        print(f"refuse_syscall: cannot install the filter: {exc}", file=sys.stderr)
        sys.exit(2)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
