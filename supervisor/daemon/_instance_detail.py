"""``eyriectl status NAME``: one instance's row, process tree, probes, limits and the tail of its log.

The log is input like any other file under the home: it is opened without following a symlink and without
blocking on a FIFO, only a regular file is read, and only its last block, in a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

import anyio.to_thread

from supervisor.control.schema import InstanceDetail, ProbeState, ProcessRow
from supervisor.engine._usage import read_pss
from supervisor.engine.procfs import read_cmdline
from supervisor.frameworks.spec import Probe, ProbeKind

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from supervisor.control.schema import InstanceView
    from supervisor.engine import Engine, ProbeResult
    from supervisor.engine.resources import ResourceSample

__all__ = ["LOG_LINES", "instance_detail", "tail_lines"]

LOG_LINES = 10
_TAIL_BYTES = 64 * 1024
_COMMAND_CHARS = 300
_FROM_VIEW = frozenset(
    {
        "name",
        "id",
        "framework",
        "status",
        "status_detail",
        "phase",
        "desired",
        "health_status",
        "pid",
        "port",
        "uptime_seconds",
        "cpu_percent",
        "memory_bytes",
        "cpu_seconds",
        "restart_count",
        "total_restarts",
        "last_error",
        "flags",
    }
)
"""What every instance's detail takes from its ps view; a managed one's adds what only the engine knows."""


async def instance_detail(view: InstanceView, engine: Engine) -> InstanceDetail:
    """The detail of the instance ``view`` shows: with its process tree, probes and log when it is managed."""
    detail = InstanceDetail(**view.model_dump(include=set(_FROM_VIEW)))
    if view.id not in engine:
        return detail
    inst, runtime = engine.get(view.id), engine.runtime(view.id)
    sample = engine.resources(view.id) if inst.pid is not None else None
    processes, log_lines = await anyio.to_thread.run_sync(_read_tree_and_log, sample, runtime.log_path)
    results = engine.probe_results(view.id)
    probes = [_probe("readiness", runtime.ready, None, results.get("readiness"))]
    if runtime.live is not None:
        probes.append(_probe("liveness", runtime.live, runtime.health.interval, results.get("liveness")))
    return detail.model_copy(
        update={
            "since": inst.status_updated_at,
            "next_start_at": inst.next_start_at,
            "last_exit": inst.last_exit,
            "processes": processes,
            "max_memory": runtime.memory.max_memory,
            "memory_grace": runtime.memory.grace if runtime.memory.max_memory is not None else None,
            "probes": probes,
            "config_path": inst.config_path,
            "log_path": str(runtime.log_path),
            "log_lines": log_lines,
        }
    )


def _read_tree_and_log(sample: ResourceSample | None, log_path: Path) -> tuple[list[ProcessRow], list[str]]:
    rows = [
        ProcessRow(
            pid=p.pid,
            ppid=p.ppid,
            command=" ".join(read_cmdline(p.pid))[:_COMMAND_CHARS],
            cpu_percent=p.cpu_percent,
            rss_bytes=p.rss_bytes,
            pss_bytes=read_pss(p.pid),
        )
        for p in (sample.processes if sample is not None else [])
    ]
    try:
        lines = tail_lines(log_path, LOG_LINES)
    except OSError:
        lines = []
    return rows, lines


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of the regular file ``path`` (from its last 64 KiB; a symlink or FIFO in
    its place is refused with an `OSError`)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        start = max(info.st_size - _TAIL_BYTES, 0)
        data = os.pread(fd, _TAIL_BYTES, start)
    finally:
        os.close(fd)
    lines = data.decode("utf-8", errors="replace").splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # the first line read is most likely cut
    return lines[-count:] if count > 0 else []


def _probe(
    role: str, probe: Probe, interval: float | None, last: tuple[ProbeResult, datetime] | None
) -> ProbeState:
    state = ProbeState(role=role, kind=probe.kind.value, target=_target(probe), interval=interval)
    if last is not None:
        result, at = last
        return state.model_copy(update={"ok": result.ok, "detail": result.detail, "at": at})
    return state


def _target(probe: Probe) -> str:
    match probe.kind:
        case ProbeKind.HTTP:
            return f"GET {probe.path} → {probe.expect}"
        case ProbeKind.TCP:
            return "connect to the port"
        case ProbeKind.LOG:
            return f"log matches {probe.pattern!r}"
        case ProbeKind.EXEC:
            return " ".join(probe.command)
        case _:
            return f"alive for {probe.seconds:g}s"
