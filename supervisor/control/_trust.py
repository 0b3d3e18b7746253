"""Whether a connection to the operator's abstract socket reached eyried: an abstract name has no owner and
no mode, so anyone may bind it while eyried is away. A connection there counts only when the process
listening is the one the home's pid file names (see `supervisor.control._dial`)."""

from __future__ import annotations

import socket

from supervisor.control._peer import peer_credentials

__all__ = ["listener_is_daemon"]


def listener_is_daemon(sock: socket.socket, daemon_pid: int | None) -> bool:
    """True when the process listening at the other end of the connected ``sock`` is ``daemon_pid``."""
    try:
        listener_pid = peer_credentials(sock)[0]
    except OSError:
        return False
    return daemon_pid is not None and listener_pid == daemon_pid
