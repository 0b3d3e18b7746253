"""Waiting for a short command the daemon ran (an exec probe, a notify hook), never leaving it behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import anyio

__all__ = ["wait_or_kill_group"]

_REAP_WAIT = 5.0
"""Seconds to wait for a killed command to be gone."""


async def wait_or_kill_group(proc: subprocess.Popen[bytes]) -> int | None:
    """Wait for ``proc`` (started in a session of its own) to exit, and return its code. When the wait ends
    otherwise (a timeout, the daemon stopping), SIGKILL its process group, so that all it started ends too,
    and reap it before the cancellation goes on."""
    fd = os.pidfd_open(proc.pid)
    try:
        await anyio.wait_readable(fd)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with anyio.CancelScope(shield=True), anyio.move_on_after(_REAP_WAIT):
                await anyio.wait_readable(fd)
            proc.poll()
        os.close(fd)
    return proc.returncode
