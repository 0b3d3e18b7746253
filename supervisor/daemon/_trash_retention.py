"""The trash's retention, applied by the daemon: at start, then every `SWEEP_INTERVAL`, entries removed
longer ago than the fleet file's ``daemon.trash_retention`` are deleted, so disk use stays bounded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio
import structlog

from supervisor.errors import EyrieError

if TYPE_CHECKING:
    from supervisor.paths import Home

__all__ = ["SWEEP_INTERVAL", "expire_trash", "keep_trash"]

SWEEP_INTERVAL = 3600.0
"""Seconds between two sweeps; a retention counts in days, so an hour late is nothing."""

log = structlog.get_logger("supervisor.daemon")


def expire_trash(home: Home, retention: float) -> int:
    """Delete the entries removed more than ``retention`` seconds ago; how many were deleted."""
    from supervisor.trash import Trash  # in the sweep's worker thread, after the fleet has started

    deleted = Trash(home).empty(older_than=timedelta(seconds=retention))
    if deleted:
        names = [entry.entry for entry in deleted]
        log.info("trash_expired", entries=names, retention_seconds=retention)
    return len(deleted)


async def keep_trash(home: Home, retention: Callable[[], float], interval: float = SWEEP_INTERVAL) -> None:
    """Sweep now and every ``interval`` seconds with the retention in force then; a failed sweep is
    logged and tried again at the next one."""
    while True:
        try:
            await anyio.to_thread.run_sync(expire_trash, home, retention())
        except (OSError, EyrieError) as exc:
            log.error("trash_sweep_failed", error=str(exc), path=str(home.root / "removed"))
        await anyio.sleep(interval)
