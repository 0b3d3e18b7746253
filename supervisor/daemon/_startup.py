"""The fleet's start-up, ended early by SIGTERM or SIGINT.

Provisioning a large fleet for the first time takes long; a stop request must not wait for all of it. Signals
are read meanwhile: SIGTERM/SIGINT cancel the start-up (what is provisioned stays provisioned, what runs is
stopped by the shutdown that follows, and the next start carries on from there), SIGHUP asks for one reload
once the start-up is done, SIGUSR2 re-executes once it is done.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass

import anyio
import structlog

from supervisor.control.schema import ReloadResult

__all__ = ["StartUp", "start_up"]

log = structlog.get_logger("supervisor.daemon")

_CANCELS = frozenset({signal.SIGTERM, signal.SIGINT})


@dataclass(slots=True)
class StartUp:
    """How the start-up went: its result (None when a signal cut it short), the signal that ends the daemon
    when one came meanwhile, and whether a reload was asked for."""

    result: ReloadResult | None = None
    ending: signal.Signals | None = None
    reload: bool = False


async def start_up(
    signals: AsyncIterable[int], lock: anyio.Lock, start: Callable[[], Awaitable[ReloadResult]]
) -> StartUp:
    """``start()`` under ``lock``, reading ``signals`` while it runs."""
    outcome = StartUp()
    async with anyio.create_task_group() as tg:

        async def listen() -> None:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    outcome.reload = True
                    continue
                outcome.ending = signal.Signals(signum)
                if outcome.ending in _CANCELS:
                    tg.cancel_scope.cancel()
                return

        tg.start_soon(listen)
        async with lock:
            outcome.result = await start()
        if outcome.ending is None:
            tg.cancel_scope.cancel()
    if outcome.result is None and outcome.ending is not None:
        log.info("startup_interrupted", signal=outcome.ending.name)
    return outcome
