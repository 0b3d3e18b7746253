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
from supervisor.errors import ProcessWatchUnavailable

__all__ = ["ExitStatus", "collect", "ended", "open_described", "open_verified", "require", "send_signal"]


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


def require() -> None:
    """Raise `ProcessWatchUnavailable` unless this process may open, signal and wait on pidfds.

    Every watch, adoption and signal goes through one; where the kernel refuses them (before Linux 5.4, or a
    seccomp filter: a container runtime's older default profile, valgrind), a live process would look
    ended, and the supervisor would start another beside it, without end. So it starts nothing instead.
    """
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError as exc:
        raise ProcessWatchUnavailable(_refused("pidfd_open", exc)) from None
    try:
        signal.pidfd_send_signal(fd, 0)
    except OSError as exc:
        raise ProcessWatchUnavailable(_refused("pidfd_send_signal", exc)) from None
    try:
        os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        pass  # the answer for a process that is not our child: waiting on pidfds works
    except OSError as exc:
        raise ProcessWatchUnavailable(_refused("waitid on a pidfd", exc)) from None
    finally:
        os.close(fd)


def _refused(call: str, exc: OSError) -> str:
    return (
        f"the kernel refuses {call} ({exc.strerror or exc}): eyrie watches every agent through a pidfd"
        " and needs Linux 5.4 or later, with pidfd_open, pidfd_send_signal and waitid allowed by any"
        " seccomp filter"
    )


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
