"""Getting a process for an instance: spawning one (the child's environment, the port check, the fork/exec)
or adopting the one its record names."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from supervisor.engine import procfs
from supervisor.engine._escaped import end_escaped, runs_in
from supervisor.engine._logs import InstanceLog, log_size
from supervisor.engine._redact import redact_cmdline, secret_values
from supervisor.engine._services import Services
from supervisor.engine.logfile import LogCursor
from supervisor.engine.process import AdoptedProcess, ProcessHandle, spawn
from supervisor.engine.recovery import same_program
from supervisor.engine.runtime import InstanceRuntime
from supervisor.errors import StartFailed
from supervisor.models import Instance, utcnow
from supervisor.ports import holder_pid, port_holder, port_in_use

__all__ = ["adopt", "check_port", "child_env", "spawn_child", "spawned_fields"]

_CHILD_ENV_DROP = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


def child_env(rt: InstanceRuntime) -> dict[str, str]:
    """The child's complete environment: ours (minus systemd's notify/socket variables), the runtime's
    additions, and the instance's identity (``EYRIE_INSTANCE_ID`` marks every process of its tree)."""
    env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROP}
    env.update(rt.env)
    env[procfs.MARKER_VAR] = rt.instance_id
    env["EYRIE_INSTANCE_NAME"] = rt.name
    env["EYRIE_PORT"] = str(rt.port)
    return env


async def check_port(
    rt: InstanceRuntime, services: Services, sweep: Callable[[], Awaitable[None]], log: Any
) -> None:
    """Refuse to spawn onto a port a stranger holds; clear our own leftovers (``sweep``) off it first, and a
    process that escaped an earlier run's tree (see `supervisor.engine._escaped`)."""
    port = rt.port
    if not port or not port_in_use(port):
        return
    pid = await anyio.to_thread.run_sync(holder_pid, port, limiter=services.threads)
    if pid is not None and procfs.read_marker(pid) == rt.instance_id:
        log.warning("port_held_by_leftover", port=port, holder=pid)
        await sweep()
        if not port_in_use(port):
            return
    pid = await anyio.to_thread.run_sync(holder_pid, port, limiter=services.threads)
    if pid is not None and runs_in(pid, rt.cwd):
        log.warning("port_held_by_escaped_process", port=port, holder=pid)
        await end_escaped(pid, rt.stop_signal, rt.stop_timeout)
        if not port_in_use(port):
            return
    holder = await anyio.to_thread.run_sync(port_holder, port, limiter=services.threads)
    raise StartFailed(f"port {port} is held by {holder or 'another process'}")


async def spawn_child(rt: InstanceRuntime, services: Services, logs: InstanceLog, log: Any) -> ProcessHandle:
    """Rotate a log already too big, then fork/exec: on the loop when alone (quicker for a lone respawn), in
    a worker thread in a crowd. ``logs.cursor`` then marks where the new run's output starts."""
    offset = log_size(rt.log_path)
    if offset >= rt.logs.max_bytes:
        await logs.rotate(rt, None, services.threads, log)
        offset = log_size(rt.log_path)
    start = functools.partial(spawn, rt.argv, env=child_env(rt), cwd=rt.cwd, log_path=rt.log_path)
    if services.spawning.crowded(anyio.current_time()):
        proc = await anyio.to_thread.run_sync(start, limiter=services.threads)
    else:
        proc = start()
    logs.cursor = LogCursor(rt.log_path, offset)
    return proc


def spawned_fields(proc: ProcessHandle, rt: InstanceRuntime, boot_id: str) -> dict[str, Any]:
    """What the record says about a process just spawned (its command line without secrets)."""
    return {
        "pid": proc.pid,
        "pgid": proc.pgid,
        "proc_start_time": proc.start_time,
        "boot_id": boot_id,
        "cmdline": redact_cmdline(proc.cmdline, secret_values(rt.env)),
        "started_at": utcnow(),
        "next_start_at": None,
        "config_hash": rt.config_hash,
    }


def adopt(record: Instance, rt: InstanceRuntime) -> AdoptedProcess | None:
    """The process ``record`` names, if it still runs as recorded (its command line compared without the
    secrets, which the record never holds); None when it is gone."""
    secrets = secret_values(rt.env)

    def same_cmdline(current: Any, recorded: Any) -> bool:
        return same_program(redact_cmdline(current, secrets), list(recorded))

    assert record.pid is not None
    return AdoptedProcess.adopt(
        record.pid,
        start_time=record.proc_start_time or 0.0,
        cmdline=record.cmdline or [],
        marker=rt.instance_id,
        same_cmdline=same_cmdline,
    )
