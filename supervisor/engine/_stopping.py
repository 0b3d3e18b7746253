"""Ending an instance's processes: the current run's tree (shielded: a stop, once begun, completes), and
leftovers of earlier runs."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from supervisor.engine._services import Services
from supervisor.engine.process import ProcessHandle
from supervisor.engine.runtime import InstanceRuntime
from supervisor.engine.stop import StopResult, stop_tree

__all__ = ["group_alive", "stop_line", "stop_run", "sweep"]

_SLOW_STOP = 0.5


async def stop_run(
    rt: InstanceRuntime,
    proc: ProcessHandle,
    services: Services,
    log: Any,
    *,
    on_slow: Callable[[], Awaitable[None]],
    before_signal: Callable[[], Awaitable[None]] | None = None,
) -> StopResult:
    """Stop ``proc`` and its tree and free the port; ``on_slow`` runs once the stop has taken longer than
    most (milliseconds), so that the actor can record "stopping" meanwhile; ``before_signal`` is awaited
    after the tree was found and before the first signal."""

    async def slow() -> None:
        await anyio.sleep(_SLOW_STOP)
        await on_slow()

    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            result = await stop_tree(
                marker=rt.marker,
                main=proc,
                pgid=proc.pgid,
                stop_signal=rt.stop_signal,
                stop_timeout=rt.stop_timeout,
                port=rt.port or None,
                scanner=services.scanner,
                before_signal=before_signal,
            )
            tg.cancel_scope.cancel()
    status = proc.exit_status
    log.info(
        "stopped",
        pid=proc.pid,
        killed=result.killed,
        seconds=round(result.seconds, 3),
        exit=status.describe() if status else "unknown",
    )
    return result


def stop_line(rt: InstanceRuntime, proc: ProcessHandle, result: StopResult) -> str:
    """The supervisor line about a stop: how the process ended, and whether SIGKILL was needed."""
    status = proc.exit_status
    text = f"stopped pid {proc.pid} ({status.describe() if status else 'ended'}) in {result.seconds:.1f}s"
    if result.killed:
        text = (
            f"{rt.stop_signal.name} did not end it within stop_timeout {rt.stop_timeout:g}s:"
            f" killed {result.killed} process(es) with SIGKILL; {text}"
        )
    return f"{text}; {result.detail}" if result.detail else text


async def sweep(
    rt: InstanceRuntime, services: Services, log: Any, *, pgid: int | None, before: int | None
) -> None:
    """End leftovers of an earlier run of this instance (processes carrying its marker)."""
    result = await stop_tree(
        marker=rt.marker,
        main=None,
        pgid=pgid,
        stop_signal=rt.stop_signal,
        stop_timeout=rt.stop_timeout,
        port=None,
        scanner=services.scanner,
        started_before=before,
    )
    if result.signalled or result.killed:
        log.info("leftovers_stopped", processes=result.signalled, killed=result.killed)


def group_alive(pgid: int) -> bool:
    """Whether a process group still has members (one cheap signal-0, no /proc scan)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
