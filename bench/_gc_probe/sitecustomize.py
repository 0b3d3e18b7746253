"""Garbage-collection pauses of an ``eyried`` run by a benchmark: with this directory on ``PYTHONPATH`` and
``EYRIE_GC_PAUSES=PATH`` set, each daemon process appends to PATH, when it exits, one JSON line: its pid and
every collection (generation, wall ms, ``time.monotonic()`` at its start, objects collected, CPU ms of the
collecting thread: on a loaded machine the wall time holds preemptions). Other processes
(the bench, eyriectl) load it and do nothing.

    PYTHONPATH=bench/_gc_probe EYRIE_GC_PAUSES=/tmp/gc.jsonl .venv/bin/python bench/respawn_bench.py ...
    .venv/bin/python -m bench.gc_pauses /tmp/gc.jsonl
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time

_PATH = os.environ.get("EYRIE_GC_PAUSES")


def _install(path: str) -> None:
    pauses: list[tuple[int, float, float, int, float]] = []
    started = [0.0, 0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = time.monotonic(), time.thread_time()
        else:
            wall, cpu = (time.monotonic() - started[0]) * 1000, (time.thread_time() - started[1]) * 1000
            pauses.append((info["generation"], wall, started[0], info["collected"], cpu))

    def dump() -> None:
        with open(path, "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "pauses": pauses}) + "\n")

    gc.callbacks.append(callback)
    atexit.register(dump)


if _PATH and "supervisor.daemon" in sys.orig_argv:
    _install(_PATH)
