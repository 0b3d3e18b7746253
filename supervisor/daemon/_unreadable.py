"""Processes of instances whose ``instance.json`` cannot be read.

Such an instance cannot be supervised (nothing says how it was started, from what, or what it is called),
and its name is not given out again (`supervisor.store.NameIndex`), so a process still running from it
would run on unsupervised. The daemon ends it, found by its marker, and reports the directory; its files
stay as they are for the operator to repair or remove.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio.to_thread
import structlog

from supervisor.engine.procfs import marker_of
from supervisor.engine.stop import ProcScanner, stop_tree
from supervisor.errors import InvalidID
from supervisor.paths import check_id

if TYPE_CHECKING:
    from supervisor.store import Store

__all__ = ["stop_unreadable"]

_STOP_TIMEOUT = 10.0

log = structlog.get_logger("supervisor.daemon")


async def stop_unreadable(store: Store) -> list[str]:
    """End the processes of every instance directory whose ``instance.json`` cannot be read; the ids of
    those that had any."""
    scanner = ProcScanner()
    stopped: list[str] = []
    for problem in await anyio.to_thread.run_sync(store.problems):
        directory = problem.path if problem.path.parent == store.root else problem.path.parent
        try:
            instance_id = check_id(directory.name)
        except InvalidID:
            continue
        result = await stop_tree(
            marker=marker_of(str(store.root.parent), instance_id),
            main=None,
            pgid=None,
            stop_signal=signal.SIGTERM,
            stop_timeout=_STOP_TIMEOUT,
            port=None,
            scanner=scanner,
        )
        if result.signalled:
            stopped.append(instance_id)
            log.warning(
                "unreadable_instance_stopped",
                instance_id=instance_id,
                name=problem.name,
                processes=result.signalled,
                killed=result.killed,
                reason=problem.reason,
            )
    return stopped
