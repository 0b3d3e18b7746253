"""The engine's side of each actor, as in a supervision tree: run it, and when it raises, restart it through
its instance's restart policy with backoff, as if its process had crashed.

A raise is a bug in the supervisor, never the agent's doing, so it must cost only that instance: the engine
ends its process, records ``last_error`` and the policy's decision, says so in the log, and runs the loop
again (after the backoff, which the actor waits out in its ``backoff`` phase, cut short by a start); past
the policy's limits the instance waits in ``error`` like any crash loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from supervisor.engine.actor import Actor

__all__ = ["supervise"]

log = structlog.get_logger("supervisor.engine")


async def supervise(actor: Actor) -> None:
    """Run ``actor`` until it is closed, detached or cancelled, restarting it whenever it raises."""
    rt = actor.runtime
    try:
        while True:
            try:
                await actor.run()
                return
            except Exception as exc:
                message = _describe(exc)
                actor.log.error("instance_internal_error", pid=actor.inst.pid, exc_info=exc)
            try:
                delay = await actor.crashed(message)
            except Exception:
                log.exception("actor_recovery_failed", instance=rt.name, instance_id=rt.instance_id)
                delay = None
            if actor.closing:
                return
            if delay is None:
                log.error("actor_held", instance=rt.name, instance_id=rt.instance_id, error=message)
                await actor.wait_for_command()
            else:
                log.warning(
                    "actor_restarted",
                    instance=rt.name,
                    instance_id=rt.instance_id,
                    error=message,
                    delay=round(delay, 3),
                    restart_count=actor.inst.restart_count,
                )
    finally:
        actor.finish()


def _describe(exc: BaseException) -> str:
    """``internal error: <type>: <message>`` of the exception itself, not of a task group that wraps it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"internal error: {type(exc).__name__}: {exc}"
