"""The C heap of the daemon: one malloc arena, set before its first thread starts, and a heap kept compact
once the start-up is over.

glibc gives each thread that allocates while another holds the main arena an arena of its own, and each one
keeps the pages it freed: ~1 MiB of resident memory over the daemon's worker threads. The daemon's threads run
Python, which allocates under the GIL, so they seldom contend for one arena. Set by ``mallopt`` rather than
``MALLOC_ARENA_MAX``, which the agents would inherit.

What the start-up frees stays resident in the heap's free lists until ``malloc_trim`` hands whole free pages
back. And after the first big buffer (128 KiB or more: a listing's JSON is ~1 MB at 1000 instances) is
freed, glibc raises its threshold for mapping such buffers on their own, so the next ones come from the heap
and leave holes in it when freed: ~0.4 MiB at 200 instances. A fixed threshold maps and unmaps each one.
Python's own small objects live in pymalloc's arenas, which it unmaps when they empty; an idle daemon's
arenas are ~97 % full of live objects, so there is nothing to give back there.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import cast

__all__ = ["compact_heap", "one_malloc_arena"]

_M_ARENA_MAX = -8  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_FROM = 128 * 1024  # glibc's initial threshold


def _libc(name: str, *argtypes: type[ctypes._SimpleCData[int]]) -> Callable[..., int] | None:
    """The C library's ``name`` taking ``argtypes``, returning an int; None where it has none (not glibc)."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return cast(Callable[..., int], function)


def one_malloc_arena() -> bool:
    """Limit malloc to the main arena; False where the C library has no such setting (not glibc)."""
    mallopt = _libc("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, 1))


def compact_heap() -> bool:
    """Give the heap's free pages back to the system (``malloc_trim(0)``) and map big buffers on their own
    from now on; False where the C library has neither call (not glibc)."""
    mallopt = _libc("mallopt", ctypes.c_int, ctypes.c_int)
    malloc_trim = _libc("malloc_trim", ctypes.c_size_t)
    if mallopt is None or malloc_trim is None:
        return False
    mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM)
    malloc_trim(0)
    return True
