"""The spawn helper's side (`supervisor.sandbox.spawner`): a single-threaded interpreter that imports almost
nothing, so that the children it clones start from a small address space, and that may run Python between
fork and exec because no other thread holds a lock.

Each request is one message: the launch as JSON, with the log fd and the Landlock ruleset fd passed along
(``SCM_RIGHTS``). The child is cloned with ``CLONE_PARENT``: it is the daemon's child, not the helper's.
It makes itself a session, takes /dev/null and the log as its standard streams, changes into its
directory, confines itself (`Confiner`), closes every other fd and execs. A failure before the exec is
written to a close-on-exec pipe, so the helper answers only once the child has exec'd or failed.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import socket
from typing import Any

from supervisor.sandbox.child import Confiner

__all__ = ["serve"]

_CLONE_PARENT = 0x00008000
_SYS_CLONE3 = 435  # the same number on every architecture
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}  # where clone3 is filtered (old seccomp profiles)
_MAX_MESSAGE = 1 << 20
_MAX_FDS = 2
_LIBC = ctypes.CDLL(None, use_errno=True)


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls")
    ]


def serve(fd: int) -> None:
    """Answer spawn requests on the socket ``fd`` until the daemon closes its end."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    # Children start with no signal ignored: neither Python's own (SIGPIPE, SIGXFSZ) nor one the daemon was
    # started with (SIGHUP under nohup), which an exec would pass on.
    for sig in signal.valid_signals():
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    sock = socket.socket(fileno=fd)
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, _MAX_FDS)
        except ConnectionResetError:
            return
        if not message:
            return
        try:
            reply = _spawn(json.loads(message), fds)
        finally:
            for passed in fds:
                os.close(passed)
        sock.send(json.dumps(reply).encode())


_CONFINERS: dict[tuple[int, bool], Confiner] = {}
"""Built once per (ruleset fd number, capability drop): each request's ruleset arrives at a number the
last one freed, and a confiner holds the number, not the ruleset."""


def _spawn(request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
    key = (fds[1] if len(fds) > 1 else -1, bool(request["drop_capabilities"]))
    confiner = _CONFINERS.get(key)
    if confiner is None:
        confiner = _CONFINERS[key] = Confiner(key[0], drop_capabilities=key[1])
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = _clone()
    if pid == 0:
        _child(request, fds[0], confiner, write_end)
    os.close(write_end)
    try:
        if pid < 0:
            return {"error": "fork", "errno": -pid}
        failure = b""
        while chunk := os.read(read_end, 64):
            failure += chunk
    finally:
        os.close(read_end)
    if not failure:
        return {"pid": pid}
    stage, _, number = failure.decode().partition(":")
    return {"pid": pid, "error": stage, "errno": int(number or 0)}


def _clone() -> int:
    """Fork as the daemon's child: 0 in the child, its pid here, or minus the errno."""
    args = _CloneArgs(flags=_CLONE_PARENT)
    pid = int(
        _LIBC.syscall(ctypes.c_long(_SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    )
    if pid < 0 and ctypes.get_errno() == errno.ENOSYS and os.uname().machine in _SYS_CLONE:
        number = _SYS_CLONE[os.uname().machine]
        zero = ctypes.c_ulong(0)
        flags = ctypes.c_ulong(_CLONE_PARENT | signal.SIGCHLD)
        pid = int(_LIBC.syscall(ctypes.c_long(number), flags, zero, zero, zero, zero))
    return pid if pid >= 0 else -ctypes.get_errno()


def _child(request: dict[str, Any], log_fd: int, confiner: Confiner, report: int) -> None:
    """In the clone: set up, confine, exec; on a failure report the stage and errno, and exit 127."""
    stage = "exec"
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.chdir(request["cwd"])
        if request.get("open_files"):
            resource.setrlimit(resource.RLIMIT_NOFILE, tuple(request["open_files"]))
        stage = "confine"
        confiner()
        stage = "exec"
        os.closerange(3, report)
        os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
        os.execve(request["executable"], request["argv"], request["env"])
    except BaseException as exc:
        number = exc.errno if isinstance(exc, OSError) and exc.errno else 0
        os.write(report, f"{stage}:{number}".encode())
    finally:
        os._exit(127)
