"""Processes of an instance that escaped its tree: a double fork, ``setsid`` and ``env -i`` leave no parent
link, no process group and no marker to find them by, and one still holding the instance's port would keep
it from ever starting again.

Such a process is recognised by where it runs: its working directory is inside the instance's workspace
(inherited from the agent, which the supervisor starts there) and it belongs to the daemon's own user.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio

from supervisor.engine import pidfd, procfs

__all__ = ["end_escaped", "runs_in"]

_KILL_WAIT = 5.0


def runs_in(pid: int, directory: Path) -> bool:
    """Whether ``pid`` belongs to this user and its working directory is ``directory`` or below it."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return False
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    root = directory.resolve()
    return cwd == root or cwd.is_relative_to(root)


async def end_escaped(pid: int, stop_signal: signal.Signals, stop_timeout: float) -> bool:
    """Stop ``pid`` (its stop signal, then SIGKILL after ``stop_timeout``); whether it has ended."""
    info = procfs.read_stat(pid)
    if info is None:
        return True
    opened = pidfd.open_verified(pid, info.start_ticks)
    if opened is None:
        return True
    fd = opened[0]
    try:
        for sig, wait in ((stop_signal, stop_timeout), (signal.SIGKILL, _KILL_WAIT)):
            pidfd.send_signal(fd, sig)
            with anyio.move_on_after(wait):
                await anyio.wait_readable(fd)
            if pidfd.ended(fd):
                return True
        return False
    finally:
        os.close(fd)
