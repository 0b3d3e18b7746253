"""The signal mask a child of the daemon starts with.

The daemon keeps its signals blocked in every thread (`supervisor.daemon._signals`), and a child inherits the
mask of the thread that forks it: forked as is, an agent would start deaf to SIGTERM and SIGHUP. Clearing
the mask in the child (a ``preexec_fn``) would cost a full fork of the daemon instead of ``vfork``, about
3 ms per spawn; the forking thread unblocks them for the moment of the fork instead. A signal that arrives in
that moment reaches the daemon's handler, which hands it to the same queue as the others.
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
