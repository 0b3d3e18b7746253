"""The daemon's side of a respawn, stamped from inside it: with this directory on ``PYTHONPATH`` and
``EYRIE_RESPAWN_PROBE=PATH`` set, an ``eyried`` process appends to PATH, when it exits, one JSON line: for
each process end it saw (its pidfd readable, the loop's callback) and the next ``posix_spawn`` call after it
(unconfined agents: a confined one is spawned from a thread of its own, not stamped), the event-loop thread's
CPU and the wall time between the two, the spawn call's own wall and CPU time and those of the C library's
``posix_spawn`` in it (the clone to the child's exec, during which a vfork parent waits), and the collections
the collector ran between. ``EYRIE_RESPAWN_PROFILE=1`` also runs cProfile from each readable pidfd to the end
of its spawn call and adds the top functions. Other processes load it and do nothing.

    PYTHONPATH=bench/_respawn_probe EYRIE_RESPAWN_PROBE=/tmp/rp.jsonl \\
        .venv/bin/python bench/respawn_bench.py --sizes 1000 --samples 200 --unconfined
    .venv/bin/python -m bench.respawn_path /tmp/rp.jsonl
"""

from __future__ import annotations

import atexit
import cProfile
import gc
import importlib.abc
import importlib.machinery
import io
import json
import os
import pstats
import sys
import time
from types import ModuleType
from typing import Any

_PATH = os.environ.get("EYRIE_RESPAWN_PROBE")
_TARGET = "supervisor.engine.process"


class _Probe:
    def __init__(self, path: str, profile: bool) -> None:
        self.path = path
        self.samples: list[dict[str, float]] = []
        self.pending: tuple[int, int, int] | None = None  # thread CPU ns, monotonic ns, collections
        self.collections = 0
        self.clones: list[tuple[float, float]] = []
        self.profiler = cProfile.Profile() if profile else None
        gc.callbacks.append(self.count)
        atexit.register(self.dump)

    def count(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.collections += 1

    def ended(self) -> None:
        if self.pending is None:
            self.pending = time.thread_time_ns(), time.monotonic_ns(), self.collections
            if self.profiler is not None:
                self.profiler.enable()

    def spawn(self, call: Any, *args: Any, **kwargs: Any) -> int:
        pending, self.pending = self.pending, None
        clones = len(self.clones)
        cpu, wall = time.thread_time_ns(), time.monotonic_ns()
        try:
            return int(call(*args, **kwargs))
        finally:
            if pending is not None:
                if self.profiler is not None:
                    self.profiler.disable()
                self.samples.append(
                    {
                        "to_spawn_cpu_ms": (cpu - pending[0]) / 1e6,
                        "to_spawn_wall_ms": (wall - pending[1]) / 1e6,
                        "spawn_wall_ms": (time.monotonic_ns() - wall) / 1e6,
                        "spawn_cpu_ms": (time.thread_time_ns() - cpu) / 1e6,
                        "collections": self.collections - pending[2],
                        "clone_cpu_ms": self.clones[clones][0] if len(self.clones) > clones else 0.0,
                        "clone_wall_ms": self.clones[clones][1] if len(self.clones) > clones else 0.0,
                        "at": pending[1] / 1e9,
                    }
                )

    def clone(self, call: Any, *args: Any) -> int:
        cpu, wall = time.thread_time_ns(), time.monotonic_ns()
        try:
            return int(call(*args))
        finally:
            self.clones.append(((time.thread_time_ns() - cpu) / 1e6, (time.monotonic_ns() - wall) / 1e6))

    def dump(self) -> None:
        fds = len(os.listdir("/proc/self/fd"))
        record: dict[str, Any] = {"pid": os.getpid(), "samples": self.samples, "fds": fds}
        if self.profiler is not None:
            out = io.StringIO()
            pstats.Stats(self.profiler, stream=out).sort_stats("tottime").print_stats(40)
            record["profile"] = out.getvalue()
        with open(self.path, "a") as out_file:
            out_file.write(json.dumps(record) + "\n")


def _patch(module: ModuleType, probe: _Probe) -> None:
    from supervisor.engine import _posix_spawn

    watch = module._EndWatch
    ended = watch.ended

    def stamped_ended(self: Any) -> None:
        probe.ended()
        ended(self)

    watch.ended = stamped_ended
    spawn = _posix_spawn.posix_spawn
    _posix_spawn.posix_spawn = lambda *a, **k: probe.spawn(spawn, *a, **k)
    calls = _posix_spawn._CALLS
    if calls is not None:
        clone = calls.spawn
        calls.spawn = lambda *a: probe.clone(clone, *a)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches the process module once it has loaded (the daemon's imports otherwise run as they do)."""

    def __init__(self, probe: _Probe) -> None:
        self.probe = probe

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        probe = self.probe

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)
                _patch(module, probe)

        spec.loader = _Loader()
        return spec


if _PATH and "supervisor.daemon" in sys.orig_argv:
    sys.meta_path.insert(0, _Finder(_Probe(_PATH, os.environ.get("EYRIE_RESPAWN_PROFILE") == "1")))
