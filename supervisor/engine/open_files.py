"""The daemon's limit on open files: room made for its fleet, the limit it was started with for its agents.

eyried holds a pidfd per running instance (two while a re-exec's children are taken over, and its log file for
the turn of the event loop that writes a spawn's lines) besides its sockets, so a fleet of several hundred
passes the soft limit of 1024 that systemd and most shells give a process. Its agents must start with the soft
limit eyried was started with, as systemd's services do: a program that uses ``select()`` breaks on a
descriptor above 1023. A child starts with the limit of the process that forks it, so once the fleet needs
more, eyried keeps its soft limit and places each descriptor it holds for an instance above it (`place_high`:
the soft limit is raised to the hard one for one ``fcntl(F_DUPFD)``, and lowered again; a spawn waits for that
window, `spawning`). A child is then started directly, with no code between fork and exec, and new descriptors
still come from below the soft limit, where few are held.

Should the room below the soft limit run short all the same, or after a re-exec, the soft limit is raised to
the hard limit for good: a confined child then sets the original limit between fork and exec
(`child_open_files`, applied in the spawn helper's clone), and an unconfined one is exec'd through
util-linux's ``prlimit``, which sets it and execs the same argv (`child_command`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "CARRIED_ENV",
    "FDS_PER_INSTANCE",
    "FDS_RESERVE",
    "OpenFilesLimit",
    "child_command",
    "child_open_files",
    "fds_needed",
    "make_room",
    "place_high",
    "reexec_env",
    "spawning",
    "take_note",
]

FDS_PER_INSTANCE = 3
"""Descriptors the daemon may hold per running instance: two pidfds and the instance's log file."""
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
    placing: bool = False
    """Descriptors held for instances are placed above ``inherited``, which stays the soft limit."""

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
    """Make room for the descriptors ``instances`` need when the soft limit does not: from now on they are
    placed above it (`place_high`). The new state, or None when nothing changed."""
    global _current
    current = _current or take_note()
    if current.placing or fds_needed(instances) <= current.soft or current.soft >= current.hard:
        return None
    _current = replace(current, placing=True)
    return _current


_WINDOW = threading.Lock()
"""Held while the soft limit is raised to place a descriptor, and while a child is forked: a child forked
then would start with the raised limit."""
_LOW_SPARE = 8
"""Once a descriptor to be placed comes from the top eighth below the soft limit, that room is running short
(something else holds many): the soft limit is raised for good."""


def place_high(fd: int) -> int:
    """``fd``, or a copy of it placed above the inherited soft limit (``fd`` is then closed) while the fleet
    needs the room: a descriptor the daemon holds for as long as an instance runs."""
    current = _current
    if current is None or not current.placing:
        return fd
    limit = current.inherited
    if fd >= limit - limit // _LOW_SPARE:
        _raise_for_good(current)
        return fd
    command = fcntl.F_DUPFD if os.get_inheritable(fd) else fcntl.F_DUPFD_CLOEXEC
    with _WINDOW:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (current.hard, current.hard))
        except (ValueError, OSError):
            return fd
        try:
            high = fcntl.fcntl(fd, command, limit)
        except OSError:
            return fd  # the hard limit is full too: keep it where it is
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, current.hard))
    os.close(fd)
    return high


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Around a fork: never while the soft limit is raised to place a descriptor."""
    with _WINDOW:
        yield


def _raise_for_good(current: OpenFilesLimit) -> None:
    """Raise the soft limit to the hard one for the rest of this image (children then get theirs back
    through ``prlimit`` or the spawn helper)."""
    global _current
    with _WINDOW:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (current.hard, current.hard))
        except (ValueError, OSError):
            return  # a hard limit above the kernel's nr_open: keep what we have
        soft = current.hard
        _current = OpenFilesLimit(current.inherited, soft, current.hard, _prlimit(soft, current.inherited))


def _prlimit(soft: int, inherited: int) -> str | None:
    return shutil.which("prlimit", path=os.defpath + ":/usr/sbin:/sbin") if soft > inherited else None


def _carried(default: int) -> int:
    raw = os.environ.pop(CARRIED_ENV, "")
    return int(raw) if raw.isdigit() else default


def reexec_env() -> dict[str, str]:
    """What the next image of the daemon needs in its environment to give children the original limit. While
    descriptors are placed above the soft limit, it is raised for good now: the next image takes over its
    children before it knows how many it will hold."""
    if _current is not None and _current.placing and not _current.raised:
        _raise_for_good(_current)
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
