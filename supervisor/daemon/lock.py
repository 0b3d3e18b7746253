"""One daemon per home: an ``flock`` held for the daemon's life, plus a pid file that names the holder."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from supervisor._safe_read import read_text
from supervisor.errors import DaemonRunning
from supervisor.paths import Home

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DaemonLock", "read_daemon_pid"]

_PID_FILE_LIMIT = 64


def read_daemon_pid(home: Home) -> int | None:
    try:
        return int(read_text(home.pid_file, limit=_PID_FILE_LIMIT).strip())
    except (OSError, ValueError):
        return None


class DaemonLock:
    """Held from `acquire` until `release` or process exit (the kernel drops an flock with its fd)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._fd: int | None = None
        self.predecessor_left = False
        """Set by `acquire`: the pid file of a daemon of this boot was still there, so that daemon did not
        stop (it was killed, crashed or re-executed) and its agents may be waiting to be adopted."""

    def acquire(self) -> None:
        self.home.ensure_run_dir()
        fd = os.open(self.home.daemon_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonRunning(read_daemon_pid(self.home), str(self.home.root)) from None
        self._fd = fd
        self.predecessor_left = _written_since_boot(self.home.pid_file)
        # tempfile loads with it: eyriectl reads the pid on every call but never writes it
        from supervisor._fs import atomic_write

        atomic_write(self.home.pid_file, f"{os.getpid()}\n", mode=0o644)

    def release(self, *, keep_pid_file: bool = False) -> None:
        """Drop the lock; remove the pid file unless ``keep_pid_file`` (a re-exec: the pid lives on)."""
        if self._fd is None:
            return
        if not keep_pid_file and read_daemon_pid(self.home) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.home.pid_file.unlink()
        os.close(self._fd)
        self._fd = None


def _written_since_boot(path: Path) -> bool:
    try:
        written = path.stat().st_mtime
    except OSError:
        return False
    return written >= time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
