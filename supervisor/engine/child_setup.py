"""What a child of the daemon starts with: an empty signal mask, and its confinement.

The daemon keeps its signals blocked in every thread (`supervisor.daemon._signals`), and a child inherits
the mask of the thread that forks it: forked as is, an agent would start deaf to SIGTERM and SIGHUP. An
unconfined child is forked (``vfork``) while the forking thread has them unblocked for that moment
(`empty_signal_mask`); a signal arriving then reaches the daemon's handler, which queues it with the
others. A confined child needs code between fork and exec anyway (a ``preexec_fn``: a full fork, about 3 ms
more for a 50 MiB daemon): it clears its mask there, then applies its confinement
(`supervisor.sandbox.child`). That code runs in the forked copy of a threaded process, so it only makes
system calls: no imports, no locks, no logging.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

from supervisor.engine.open_files import restore_in_child

__all__ = ["confined_child_setup", "empty_signal_mask"]


@contextlib.contextmanager
def empty_signal_mask() -> Iterator[None]:
    """No signal blocked in this thread while the block runs: what a child forked in it starts with."""
    mask = signal.pthread_sigmask(signal.SIG_SETMASK, ())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def confined_child_setup(confine: Callable[[], None]) -> Callable[[], None]:
    """The ``preexec_fn`` of a confined child: the signal mask cleared, the daemon's original limit on open
    files (`supervisor.engine.open_files`), then ``confine`` (prepared by the parent)."""

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        restore_in_child()
        confine()

    return setup
