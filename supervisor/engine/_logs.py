"""An instance's log as its actor uses it: the cursor log probes read from, rotation, which moves those bytes,
under one lock, and the supervisor's own lines about the instance."""

from __future__ import annotations

import os
from typing import Any

import anyio

from supervisor.engine import procfs
from supervisor.engine._sparse import SparseLock
from supervisor.engine._supervisor_lines import SupervisorLines
from supervisor.engine.logfile import LogCursor, rotate
from supervisor.engine.process import ProcessHandle
from supervisor.engine.runtime import InstanceRuntime

__all__ = ["InstanceLog", "log_size"]


class InstanceLog:
    """``cursor`` marks where the current run's output starts; None while no process runs."""

    def __init__(self) -> None:
        self.cursor: LogCursor | None = None
        self.lock = SparseLock()
        self.lines = SupervisorLines()

    def note(self, rt: InstanceRuntime, text: str) -> None:
        """Write one supervisor line (``started pid 4242``) into the instance's log."""
        self.lines.write(rt.log_path, text)

    def too_big(self, rt: InstanceRuntime) -> bool:
        return log_size(rt.log_path) >= rt.logs.max_bytes

    async def rotate(
        self, rt: InstanceRuntime, proc: ProcessHandle | None, threads: anyio.CapacityLimiter, log: Any
    ) -> None:
        """Rotate, pausing the instance's processes (found by marker, main process and group) meanwhile."""
        main = (proc.pid, proc.start_ticks) if proc is not None else None
        pgid = proc.pgid if proc is not None else None

        def members() -> dict[int, int]:
            table = procfs.scan()
            pids = procfs.tree_members(table, marker=rt.marker, main=main, pgid=pgid)
            return {pid: table[pid].start_ticks for pid in pids}

        path = rt.log_path
        try:
            with self.lines.held(path):
                result = await anyio.to_thread.run_sync(rotate, path, rt.logs, members, limiter=threads)
        except OSError as exc:
            log.error("log_rotation_failed", path=str(rt.log_path), error=exc.strerror or str(exc))
            return
        if result is None:
            return
        if self.cursor is not None:
            self.cursor.rotated(result.backup, result.size)
        log.info(
            "log_rotated",
            pid=proc.pid if proc is not None else None,
            bytes=result.size,
            paused_processes=result.frozen,
            paused_ms=round(result.paused * 1000, 2),
        )


def log_size(path: os.PathLike[str] | str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
