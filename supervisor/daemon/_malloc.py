"""One malloc arena for the whole daemon, set before its first thread starts.

glibc gives each thread that allocates while another holds the main arena an arena of its own, and each one
keeps the pages it freed: ~1 MiB of resident memory over the daemon's worker threads. The daemon's threads run
Python, which allocates under the GIL, so they seldom contend for one arena. Set by ``mallopt`` rather than
``MALLOC_ARENA_MAX``, which the agents would inherit.
"""

from __future__ import annotations

import ctypes

__all__ = ["one_malloc_arena"]

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
