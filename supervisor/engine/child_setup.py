"""What a child of the daemon starts with: an empty signal mask.

The daemon keeps its signals blocked in every thread (`supervisor.daemon._signals`), and a child inherits
the mask of the thread that forks it: forked as is, an agent would start deaf to SIGTERM and SIGHUP. A
child started by ``posix_spawn`` is given an empty mask by it (`supervisor.engine._posix_spawn`); one
forked by ``subprocess`` (a probe's command, a notify hook, an agent where the C library lacks what
``posix_spawn`` needs here) is forked while the forking thread has them unblocked for that moment
(`empty_signal_mask`); a signal arriving then reaches the daemon's handler, which queues it with the
others. The spawn helper runs with no signal blocked (`supervisor.sandbox.spawner`).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["empty_signal_mask"]


@contextlib.contextmanager
def empty_signal_mask() -> Iterator[None]:
    """No signal blocked in this thread while the block runs: what a child forked in it starts with."""
    mask = signal.pthread_sigmask(signal.SIG_SETMASK, ())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
