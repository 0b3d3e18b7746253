"""The fleet's start-up, ended early by SIGTERM or SIGINT.

Provisioning a large fleet for the first time takes long; a stop request must not wait for all of it. Signals
are read meanwhile: SIGTERM/SIGINT cancel the start-up (what is provisioned stays provisioned, what runs is
stopped by the shutdown that follows, and the next start carries on from there) unless processes of an
earlier daemon still wait to be adopted (cut short, they would run on unsupervised: the start-up then ends
first, as before); SIGHUP asks for one reload once the start-up is done, SIGUSR2 re-executes once it is done.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass

import anyio
import structlog

from supervisor.control._reload import ReloadResult
from supervisor.models import Instance
from supervisor.store import Store

__all__ = ["StartUp", "never", "nothing_to_adopt", "start_up"]

log = structlog.get_logger("supervisor.daemon")

_CANCELS = frozenset({signal.SIGTERM, signal.SIGINT})


@dataclass(slots=True, eq=False)
class StartUp:
    """How the start-up went: its result (None when a signal cut it short), the signal that ends the daemon
    when one came meanwhile, and whether a reload was asked for."""

    result: ReloadResult | None = None
    ending: signal.Signals | None = None
    reload: bool = False


async def never() -> bool:
    """A re-executed daemon's start-up adopts its predecessor's processes: never cut short."""
    return False


async def nothing_to_adopt(store: Store, supervised: Callable[[], list[Instance]], boot_id: str) -> bool:
    """Whether every process recorded in ``store`` as running since this boot is supervised already."""
    recorded = await anyio.to_thread.run_sync(store.list)
    ours = {inst.id for inst in supervised()}
    return all(inst.id in ours for inst in recorded if inst.pid and inst.boot_id == boot_id)


async def start_up(
    signals: AsyncIterable[int],
    lock: anyio.Lock,
    start: Callable[[], Awaitable[ReloadResult]],
    may_cut: Callable[[], Awaitable[bool]],
) -> StartUp:
    """``start()`` under ``lock``, reading ``signals`` while it runs; a stop signal cuts it short when
    ``may_cut()`` says so."""
    outcome = StartUp()
    async with anyio.create_task_group() as tg:

        async def listen() -> None:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    outcome.reload = True
                    continue
                outcome.ending = signal.Signals(signum)
                if outcome.ending in _CANCELS and await may_cut():
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
