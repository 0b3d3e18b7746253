"""The ``fleet ready`` event: once per daemon image, when every instance it took over at start has come to
rest (adopted, started up to readiness, failed, or not wanted running), with the counts, the seconds since
the image began (the process's exec, or the re-exec's start) and the CPU seconds the process has used. What
a benchmark, a script or ``eyriectl events`` waits on to know that a start, an adoption after a crash or an
upgrade in place is over."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import structlog

from supervisor.engine.events import Event
from supervisor.models import utcnow

if TYPE_CHECKING:
    from pathlib import Path

    from supervisor.engine import Engine

__all__ = ["FLEET_READY", "announce_fleet_ready", "log_ready", "seconds_since_exec"]

FLEET_READY = "fleet ready"
"""The ``detail`` of the ``daemon`` event."""

log = structlog.get_logger("supervisor.daemon")


def seconds_since_exec() -> float:
    """Seconds since this process was created (``/proc/self/stat``, in clock ticks: 10 ms here)."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime: ticks since boot
    return max(time.clock_gettime(time.CLOCK_BOOTTIME) - started, 0.0)


async def announce_fleet_ready(
    engine: Engine,
    publish: Callable[[Event], None],
    reexecuted_at: float | None,
    announced: anyio.Event | None = None,
) -> None:
    """Wait for the fleet the engine supervises now to come to rest, then publish and log it once, and set
    ``announced``.

    ``reexecuted_at``: when a re-exec began (``time.monotonic()``), for an image that followed one; the
    seconds then count from it rather than from the process's creation, which the re-exec kept."""
    began = time.monotonic() - seconds_since_exec() if reexecuted_at is None else reexecuted_at
    settled = await engine.settled()
    data = {
        "adopted": settled.adopted,
        "started": settled.started,
        "failed": settled.failed,
        "stopped": settled.stopped,
        "seconds": round(time.monotonic() - began, 4),
        "cpu_seconds": round(time.process_time(), 3),
    }
    publish(Event(time=utcnow(), event="daemon", detail=FLEET_READY, data=data))
    log.info("fleet_ready", **data)
    if announced is not None:
        announced.set()


def log_ready(instances: int, socket: Path, reexecuted_at: float | None) -> None:
    """``daemon_ready``: the API answers and every declared instance is under supervision (what READY=1
    says); the ``fleet ready`` event follows once they have come to rest."""
    extra = {"reexec_seconds": round(time.monotonic() - reexecuted_at, 3)} if reexecuted_at else {}
    log.info("daemon_ready", instances=instances, socket=str(socket), **extra)
