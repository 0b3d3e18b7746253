"""Confined children are forked by a small spawn helper, not by the daemon.

A confined child needs code between fork and exec (`supervisor.sandbox.child`). Run from the daemon that
is a ``preexec_fn``: a full fork of a large threaded process (~3 ms), with Python running in a copy whose
other threads may have held locks. The helper is a fresh interpreter importing almost nothing, started at
the first confined spawn, single-threaded; it clones each child with ``CLONE_PARENT``
(`supervisor.sandbox._spawn_server`), so the child is the daemon's own, as if the daemon had forked it:
the daemon watches and reaps it through its pidfd and learns its exit code, and a helper that dies loses
no child. A helper found dead is replaced before the next request; one that dies during a request fails
that spawn.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import supervisor

__all__ = ["ConfinementFailed", "SpawnHelper"]

_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from supervisor.sandbox._spawn_server import serve; serve(int(sys.argv[2]))"
)


class ConfinementFailed(Exception):
    """The child could not confine itself; it exited without exec'ing."""


class SpawnHelper:
    """The daemon's end: one request at a time (callers may be worker threads), the helper started lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        """The helper's pid while one runs."""
        return self._proc.pid if self._proc is not None else None

    def spawn(
        self,
        argv: Sequence[str],
        executable: str,
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_fd: int,
        ruleset: int,
        drop_capabilities: bool,
        open_files: tuple[int, int] | None = None,
    ) -> int:
        """Start ``argv`` confined, as a child of this process; its pid once it has exec'd. ``open_files``:
        the (soft, hard) limit on open files it starts with, when not this process's.

        Raises `OSError` when it cannot be forked or exec'd, `ConfinementFailed` when it could not confine
        itself (the child has been reaped in both cases)."""
        request = json.dumps(
            {
                "argv": list(argv),
                "executable": executable,
                "env": dict(env),
                "cwd": str(cwd),
                "drop_capabilities": drop_capabilities,
                "open_files": open_files,
            }
        ).encode()
        fds = [log_fd] if ruleset < 0 else [log_fd, ruleset]
        with self._lock:
            reply = self._ask(request, fds)
        answer = json.loads(reply)
        error = answer.get("error")
        if error is None:
            return int(answer["pid"])
        if "pid" in answer:
            os.waitpid(answer["pid"], 0)  # our child, which exited before its exec
        number = int(answer.get("errno") or errno.EIO)
        if error == "confine":
            raise ConfinementFailed(os.strerror(number))
        raise OSError(number, os.strerror(number))

    def close(self) -> None:
        """End the helper (its children are ours and go on)."""
        with self._lock:
            self._discard()

    def _ask(self, request: bytes, fds: list[int]) -> bytes:
        for attempt in range(2):
            sock = self._running()
            try:
                socket.send_fds(sock, [request], fds)
            except (BrokenPipeError, ConnectionResetError):  # it died idle: nothing was cloned
                self._discard()
                if attempt:
                    raise OSError(errno.EPIPE, "the spawn helper ended") from None
                continue
            try:
                reply = sock.recv(65536)
            except OSError:
                reply = b""
            if reply:
                return reply
            self._discard()
            break
        raise OSError(errno.EPIPE, "the spawn helper ended during the spawn")

    def _running(self) -> socket.socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        self._discard()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = str(Path(supervisor.__file__).resolve().parent.parent)
        mask = signal.pthread_sigmask(signal.SIG_SETMASK, ())  # the helper starts with none blocked
        try:
            with theirs:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _BOOT, root, str(theirs.fileno())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    pass_fds=[theirs.fileno()],
                    start_new_session=True,
                )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._sock = ours
        return ours

    def _discard(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(5)  # it exits when its socket closes
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
