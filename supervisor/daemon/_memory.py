"""Give back what the start-up left behind, once the fleet has come to rest.

A start-up allocates far more than the daemon keeps: every module's code and the parse of the fleet file
and of each ``instance.json``. What it freed stays in the C allocator's free lists, and what it kept is
scanned again by every full garbage collection. So, once: collect, freeze what survived (``gc.freeze``:
later collections skip it) and ask glibc to return its free pages (``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import gc

import anyio
import structlog

__all__ = ["release_startup_memory"]

log = structlog.get_logger("supervisor.daemon")


async def release_startup_memory(settled: anyio.Event) -> None:
    """After ``settled``, collect and freeze the heap and trim the C allocator (a no-op without glibc)."""
    await settled.wait()
    gc.collect()
    gc.freeze()
    trimmed = _malloc_trim()
    log.debug("startup_memory_released", frozen=gc.get_freeze_count(), trimmed=trimmed)


def _malloc_trim() -> bool:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
