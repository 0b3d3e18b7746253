"""Who is at the other end of a Unix socket: its credentials, and whether it runs with ``no_new_privs``.

Every confined agent has it (Landlock needs it), and so does every process it forks: the flag is inherited,
can never be cleared, and survives a double fork, ``setsid`` and a cleared environment. So a peer with
``NoNewPrivs: 1`` in ``/proc/<pid>/status`` may be an agent and is kept off the operator's pathname socket.

The peer is pinned with ``SO_PEERPIDFD`` (Linux 6.5): its status is read by pid, then the pidfd tells whether
that very process is still alive, so a pid reused meanwhile is never read by mistake. On older kernels the
pid from ``SO_PEERCRED`` is used and the process's start time, read before and after, must not change.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct

__all__ = ["peer_credentials", "peer_no_new_privs"]

_SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)
_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }
_STATUS_LIMIT = 16384


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a connected Unix socket (for a client, the
    process that called ``listen``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def peer_no_new_privs(sock: socket.socket) -> bool | None:
    """The peer's ``no_new_privs`` flag, or None when it cannot be told (the peer is gone or out of sight)."""
    try:
        pidfd = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERPIDFD)
    except OSError:
        return _by_pid(sock)
    try:
        pid = _pid_of(pidfd)
        if pid is None:
            return None
        flag = _no_new_privs(pid)
        return None if _ended(pidfd) else flag
    finally:
        os.close(pidfd)


def _by_pid(sock: socket.socket) -> bool | None:
    from supervisor.engine.procfs import read_stat  # eyriectl asks only for credentials: it never pays for it

    pid = peer_credentials(sock)[0]
    if pid <= 0:
        return None
    before = read_stat(pid)
    flag = _no_new_privs(pid)
    after = read_stat(pid)
    if before is None or after is None or before.start_ticks != after.start_ticks or after.gone:
        return None
    return flag


def _pid_of(pidfd: int) -> int | None:
    """The pid a pidfd refers to, from ``/proc/self/fdinfo`` (-1 there once it has been reaped)."""
    with open(f"/proc/self/fdinfo/{pidfd}", "rb") as info:
        for line in info:
            if line.startswith(b"Pid:"):
                pid = int(line.split()[1])
                return pid if pid > 0 else None
    return None


def _no_new_privs(pid: int) -> bool | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            text = status.read(_STATUS_LIMIT)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(b"NoNewPrivs:"):
            return line.split()[1] != b"0"
    return None


def _ended(pidfd: int) -> bool:
    """A pidfd polls readable once its process has exited."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    with contextlib.suppress(InterruptedError):
        return bool(poller.poll(0))
    return True
