"""Process identity through pidfds: the checks that keep the supervisor from signalling a stranger that was
given a recycled pid.

A pid names whoever holds it now; a pidfd names one process for as long as it is open. So a process seen in
``/proc`` is trusted only through a pidfd opened *before* its start time is compared with the one recorded:
when they match, the pidfd refers to the verified process, and a signal sent through it reaches that process
or, once it has ended, nothing.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from dataclasses import dataclass

from supervisor.engine import procfs

__all__ = ["ExitStatus", "collect", "ended", "open_described", "open_verified", "send_signal"]


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended: an exit ``code``, or the ``signal`` that killed it; both None when unknown."""

    code: int | None = None
    signal: int | None = None

    @property
    def failed(self) -> bool:
        """Anything but a clean exit 0 (an unknown ending counts as a failure)."""
        return self.code != 0

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"killed by {name}"
        if self.code is None:
            return "exited (status unknown)"
        return f"exit code {self.code}"


def open_verified(pid: int, start_ticks: int) -> tuple[int, procfs.ProcInfo] | None:
    """A pidfd for ``pid`` while it is still the process that started at ``start_ticks``, with its stat row
    (read after the pidfd was opened, so it describes the pidfd's process). None when the pid is gone or now
    belongs to another process; the caller closes the pidfd."""
    opened = open_described(pid)
    if opened is not None and opened[1].start_ticks != start_ticks:
        os.close(opened[0])
        return None
    return opened


def open_described(pid: int) -> tuple[int, procfs.ProcInfo] | None:
    """A pidfd for whoever holds ``pid`` now, with its stat row read after the pidfd was opened: the row
    describes the pidfd's process, so a start time compared with it afterwards proves who the pidfd names.
    None when the pid is gone; the caller closes the pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    info = procfs.read_stat(pid)
    if info is None:
        os.close(fd)
        return None
    return fd, info


def ended(pidfd: int) -> bool:
    """Whether the pidfd's process has ended (its pidfd turns readable then); never blocks."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def send_signal(pidfd: int, sig: signal.Signals) -> None:
    """Signal the pidfd's process; one that has ended is ignored."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, sig)


def collect(idtype: int, ident: int) -> ExitStatus | None:
    """Reap an ended child (``os.waitid`` ``idtype``: ``P_PIDFD`` or ``P_PID``) and say how it ended; None
    while it runs. Raises `ChildProcessError` when it is not our child."""
    res = os.waitid(idtype, ident, os.WEXITED | os.WNOHANG)
    if res is None:
        return None
    if res.si_code == os.CLD_EXITED:
        return ExitStatus(code=res.si_status)
    return ExitStatus(signal=res.si_status)
