"""How `supervisor.daemon.daemon.Daemon.run` ended, for `supervisor.daemon.main` to act on."""

from __future__ import annotations

import signal
from dataclasses import dataclass

__all__ = ["Outcome", "Reexec", "Stopped"]


@dataclass(eq=False)
class Stopped:
    """SIGTERM or SIGINT: the fleet is stopped and the process exits."""


@dataclass(eq=False)
class Reexec:
    """SIGUSR2: the agents keep running and the process image is to be replaced by the same command line."""

    began: float
    """``time.monotonic()`` when the re-exec began: the next image counts its downtime from it."""
    carried_signals: tuple[signal.Signals, ...] = ()
    """Stop requests that reached this image after the re-exec began; raised again for the next one."""


Outcome = Stopped | Reexec
