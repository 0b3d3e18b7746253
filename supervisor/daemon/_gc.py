"""The garbage collector of a large fleet: what a start-up or a reload builds lives as long as the fleet, so
once the fleet has come to rest it is collected once and frozen (`gc.freeze`), later collections walk only
what came after it, and the pages the collection freed go back to the system (`compact_heap`).

Unfrozen, the objects of 1,000 instances sit in the collector's older generations, and every collection that
reaches them walks them all: at N = 1000 the middle generation's collections took 2–90 ms and the oldest's
50–80 ms, on the event loop, where a respawn waits for them. Frozen objects are still freed by reference
counting; only a cycle among them waits for the next settling, which a reload brings (it unfreezes first,
so the cycles of what it replaced are found).
"""

from __future__ import annotations

import asyncio
import gc
import time

import anyio
import structlog

from supervisor.daemon._malloc import compact_heap

__all__ = ["AFTER_RELOAD", "settle_after", "settle_heap", "settle_soon"]

AFTER_RELOAD = 2.0
"""Seconds after a reload before the heap is settled: the instances it restarted have started by then."""

_pending: list[asyncio.TimerHandle] = []

log = structlog.get_logger("supervisor.daemon")


def settle_heap(*, unfreeze: bool) -> None:
    """Collect everything the collector tracks, freeze what survives and give the freed pages back;
    ``unfreeze`` first to look again at what an earlier settling froze."""
    started = time.perf_counter()
    if unfreeze:
        gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    compact_heap()
    took = round((time.perf_counter() - started) * 1000, 1)
    log.debug("heap_settled", collected=collected, frozen=gc.get_freeze_count(), ms=took)


async def settle_after(announced: anyio.Event) -> None:
    """Settle once the fleet a start-up or adoption took over has come to rest (``fleet ready``)."""
    await announced.wait()
    settle_heap(unfreeze=False)


def settle_soon() -> None:
    """After a reload: settle `AFTER_RELOAD` seconds from now (once, however many reloads come meanwhile)."""
    for handle in _pending:
        handle.cancel()
    _pending[:] = [asyncio.get_running_loop().call_later(AFTER_RELOAD, lambda: settle_heap(unfreeze=True))]
