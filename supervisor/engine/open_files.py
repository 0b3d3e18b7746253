"""The daemon's limit on open files: raised for itself, given back as it was to the agents it starts.

eyried holds about three descriptors per instance (two pidfds and its log file) besides its sockets, so a
fleet of a few hundred passes the soft limit of 1024 that systemd and most shells give a process. Like
systemd, which raises its own soft limit to the hard limit and starts each service with a soft limit of 1024,
the daemon raises its soft limit to the hard limit once its fleet needs more than it has (`make_room`) and
starts its children with the soft limit it was started with: a program that uses ``select()`` breaks on a
descriptor above 1023, so it must not be handed more than it expects. A confined child sets it between fork
and exec, where it runs code anyway (`child_open_files`, applied in the spawn helper's clone). An unconfined
child is forked with ``vfork``, which runs no code of ours before the exec, and a full fork of the daemon
costs milliseconds (the price of a ``preexec_fn``), so its program is exec'd through util-linux's ``prlimit``,
which sets the soft limit and execs the same argv (`child_command`).
"""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CARRIED_ENV",
    "FDS_PER_INSTANCE",
    "FDS_RESERVE",
    "OpenFilesLimit",
    "child_command",
    "child_open_files",
    "fds_needed",
    "make_room",
    "reexec_env",
    "take_note",
]

FDS_PER_INSTANCE = 3
"""Descriptors the daemon holds per running instance: two pidfds and the instance's log file."""
FDS_RESERVE = 256
"""Descriptors for everything else: sockets of the API and its clients, probes, state files being written."""
CARRIED_ENV = "EYRIE_OPEN_FILES_SOFT"
"""Carries the soft limit the first image was started with across a re-exec (the raised one is inherited)."""


@dataclass(frozen=True)
class OpenFilesLimit:
    """The daemon's limit on open files, and what its children get."""

    inherited: int
    """The soft limit eyried was started with: what its children get."""
    soft: int
    hard: int
    prlimit: str | None = None
    """The ``prlimit`` that gives unconfined children ``inherited`` (None: not needed, or not found)."""

    @property
    def raised(self) -> bool:
        return self.soft > self.inherited

    @property
    def agents(self) -> int:
        """The soft limit an unconfined agent starts with: ``inherited``, unless ``prlimit`` is missing."""
        return self.soft if self.raised and self.prlimit is None else self.inherited


_current: OpenFilesLimit | None = None


def fds_needed(instances: int) -> int:
    """Open files a daemon running ``instances`` instances needs."""
    return FDS_PER_INSTANCE * instances + FDS_RESERVE


def take_note() -> OpenFilesLimit:
    """Note this process's limit on open files at start: its children get the soft limit it has now (or,
    after a re-exec, the one the first image had)."""
    global _current
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inherited = min(_carried(soft), soft)
    _current = OpenFilesLimit(inherited=inherited, soft=soft, hard=hard, prlimit=_prlimit(soft, inherited))
    return _current


def make_room(instances: int) -> OpenFilesLimit | None:
    """Raise the soft limit to the hard limit when ``instances`` need more than it allows; the new limit, or
    None when nothing changed. Raised only when needed: once raised, each unconfined child is exec'd through
    ``prlimit`` (an exec more per spawn)."""
    global _current
    current = _current or take_note()
    if fds_needed(instances) <= current.soft or current.soft >= current.hard:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (current.hard, current.hard))
    except (ValueError, OSError):
        return None  # a hard limit above the kernel's nr_open: keep what we have
    soft = current.hard
    _current = OpenFilesLimit(current.inherited, soft, current.hard, _prlimit(soft, current.inherited))
    return _current


def _prlimit(soft: int, inherited: int) -> str | None:
    return shutil.which("prlimit", path=os.defpath + ":/usr/sbin:/sbin") if soft > inherited else None


def _carried(default: int) -> int:
    raw = os.environ.pop(CARRIED_ENV, "")
    return int(raw) if raw.isdigit() else default


def reexec_env() -> dict[str, str]:
    """What the next image of the daemon needs in its environment to give children the original limit."""
    return {} if _current is None or not _current.raised else {CARRIED_ENV: str(_current.inherited)}


def child_command(argv: Sequence[str], executable: str) -> tuple[Sequence[str], str]:
    """The argv and executable that start ``argv`` unconfined with the soft limit the daemon was started with:
    unchanged unless the daemon raised its own."""
    if _current is None or not _current.raised or _current.prlimit is None:
        return argv, executable
    # prlimit finds the program on the child's PATH as the executable was found, and keeps its argv[0]
    return [_current.prlimit, f"--nofile={_current.inherited}:", "--", *argv], _current.prlimit


def child_open_files() -> tuple[int, int] | None:
    """The (soft, hard) limit a child sets between fork and exec; None when the daemon's is unchanged."""
    if _current is None or not _current.raised:
        return None
    return _current.inherited, _current.hard
