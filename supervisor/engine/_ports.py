"""Which process listens on a port, so the engine can tell its own leftovers from a stranger.

`supervisor.ports` answers "is it taken" and "by whom" (for the message); the engine also needs the pid to
read that process's instance marker.
"""

from __future__ import annotations

import contextlib

import psutil

__all__ = ["holder_pid"]


def holder_pid(port: int) -> int | None:
    """The pid listening on ``port`` (any local address), when it can be seen."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return conn.pid
    return None
