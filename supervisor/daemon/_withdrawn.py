"""Instances the fleet last applied declared and the fleet now applied does not: removed from the file while
no daemon ran, or while a removal was under way when the daemon died or re-executed.

The fleet last applied (``run/fleet.applied.json``) is written only once an apply is complete, so a removal
that a dead daemon never finished is still listed in it, and the next image finishes it. An instance that
was never declared (made by eyrie's Go code) is in no applied fleet and stays an ORPHAN, untouched.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio
import structlog

from supervisor.daemon._last_applied import load_applied
from supervisor.engine.procfs import marker_of
from supervisor.engine.stop import ProcScanner, stop_tree
from supervisor.errors import EyrieError

if TYPE_CHECKING:
    from pathlib import Path

    from supervisor.fleet import FleetFile

__all__ = ["end_processes", "last_applied"]

_STOP_TIMEOUT = 10.0
"""Seconds a withdrawn instance's processes get after SIGTERM when its declaration cannot say (it no longer
builds a runtime)."""

log = structlog.get_logger("supervisor.daemon")


async def last_applied(run_dir: Path) -> FleetFile | None:
    """The fleet the previous daemon image applied last; None when none was kept or it cannot be read."""
    try:
        return await anyio.to_thread.run_sync(load_applied, run_dir)
    except EyrieError as exc:
        log.error("last_applied_fleet_unreadable", error=str(exc))
        return None


async def end_processes(home: Path, instance_id: str, pgid: int | None) -> None:
    """End every process carrying the marker of ``home``'s instance ``instance_id`` (and its recorded
    group), for an instance that cannot be taken under supervision to be stopped properly."""
    result = await stop_tree(
        marker=marker_of(str(home), instance_id),
        main=None,
        pgid=pgid,
        stop_signal=signal.SIGTERM,
        stop_timeout=_STOP_TIMEOUT,
        port=None,
        scanner=ProcScanner(),
    )
    if result.signalled:
        log.warning("withdrawn_instance_stopped", instance_id=instance_id, processes=result.signalled)
