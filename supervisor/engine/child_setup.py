"""What every child of the daemon runs between fork and exec (``subprocess``'s ``preexec_fn``).

The daemon keeps its signals blocked in every thread (`supervisor.daemon._signals`), and a child inherits
the mask of the thread that forks it: without this, an agent would start deaf to SIGTERM and SIGHUP. A
confined agent then applies its confinement (`supervisor.sandbox.child`). Code here runs in the forked copy
of a threaded process, so it only makes system calls: no imports, no locks, no logging.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

__all__ = ["child_setup", "clear_signal_mask"]


def clear_signal_mask() -> None:
    """Unblock every signal, as a freshly started program expects."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def child_setup(confine: Callable[[], None] | None) -> Callable[[], None]:
    """The ``preexec_fn`` of a child: the signal mask cleared, then ``confine`` (prepared by the parent)."""
    if confine is None:
        return clear_signal_mask

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        confine()

    return setup
