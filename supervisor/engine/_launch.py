"""Launching an instance's process: the child's environment, the port check, and the spawn itself."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from supervisor.engine import _procfs
from supervisor.engine._ports import holder_pid
from supervisor.engine._services import Services
from supervisor.engine.process import ProcessHandle, spawn
from supervisor.engine.runtime import InstanceRuntime
from supervisor.errors import StartFailed
from supervisor.ports import port_holder, port_in_use

__all__ = ["check_port", "child_env", "spawn_child"]

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
    env[_procfs.MARKER_VAR] = rt.instance_id
    env["EYRIE_INSTANCE_NAME"] = rt.name
    env["EYRIE_PORT"] = str(rt.port)
    return env


async def check_port(
    rt: InstanceRuntime, services: Services, sweep: Callable[[], Awaitable[None]], log: Any
) -> None:
    """Refuse to spawn onto a port a stranger holds; clear our own leftovers (``sweep``) off it first."""
    port = rt.port
    if not port or not port_in_use(port):
        return
    pid = await anyio.to_thread.run_sync(holder_pid, port, limiter=services.threads)
    if pid is not None and _procfs.read_marker(pid) == rt.instance_id:
        log.warning("port_held_by_leftover", port=port, holder=pid)
        await sweep()
        if not port_in_use(port):
            return
    holder = await anyio.to_thread.run_sync(port_holder, port, limiter=services.threads)
    raise StartFailed(f"port {port} is held by {holder or 'another process'}")


async def spawn_child(rt: InstanceRuntime, services: Services) -> ProcessHandle:
    """Fork/exec on the loop when alone (quicker for a lone respawn), in a worker thread in a crowd."""
    start = functools.partial(spawn, rt.argv, env=child_env(rt), cwd=rt.cwd, log_path=rt.log_path)
    if services.spawning.crowded(anyio.current_time()):
        return await anyio.to_thread.run_sync(start, limiter=services.threads)
    return start()
