"""The C heap of the daemon: one malloc arena, set before its first thread starts, and the pages that the
start-up freed given back once the fleet has come to rest.

glibc gives each thread that allocates while another holds the main arena an arena of its own, and each one
keeps the pages it freed: ~1 MiB of resident memory over the daemon's worker threads. The daemon's threads run
Python, which allocates under the GIL, so they seldom contend for one arena. Set by ``mallopt`` rather than
``MALLOC_ARENA_MAX``, which the agents would inherit.

What the start-up frees (the fleet file's parse tree, records read and replaced, JSON) stays resident in the
heap's free lists until ``malloc_trim`` hands whole free pages back: ~0.4 MiB at 200 instances, ~1 MiB at
1000. Python's own small objects live in pymalloc arenas, which it unmaps when they empty; an idle daemon's
arenas are ~97 % full of live objects, so there is nothing more to give back there.
"""

from __future__ import annotations

import ctypes

__all__ = ["give_back_freed_pages", "one_malloc_arena"]

_M_ARENA_MAX = -8  # glibc's malloc.h


def one_malloc_arena() -> bool:
    """Limit malloc to the main arena; False where the C library has no such setting (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, 1))


def give_back_freed_pages() -> bool:
    """Return the heap's free pages to the system (``malloc_trim(0)``); False where the C library has no
    such call (not glibc) or nothing was returned."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))
