"""``eyried`` with notes taken at its agent spawns: run as ``python -P bench/_last_spawn.py ARGS`` (the
daemon's own arguments).

``$EYRIE_BENCH_LAST_SPAWN=PATH:N``: at the N-th call of the C library's ``posix_spawn`` (or of
``subprocess.Popen``) a JSON note goes to PATH: ``time.monotonic()`` and the process's CPU seconds when the
daemon's imports were done (``main`` called), at the first spawn and at the N-th, and each thread's CPU
seconds then (``/proc/self/task/*/stat``, the main thread apart). ``EYRIE_BENCH_PROFILE=FILE``: the main
thread runs under cProfile from ``main`` to the N-th spawn, its stats dumped to FILE.
``EYRIE_BENCH_PHASES=1``: the calls named in `PHASES` are timed, each call's start and end (monotonic, and
its thread's CPU) in the note. ``EYRIE_BENCH_EXIT_AT_SPAWN=1``: the process ends at the N-th spawn before
making it (the home is left as it was, children spawned before it keep running).
Each moment noted also counts the turns of the event loop so far (a figure the load does not move: what
waits for one turn after another shows there)."""

from __future__ import annotations

import asyncio.base_events
import json
import os
import sys
import threading
import time
from typing import Any

from supervisor.engine import _posix_spawn

_PATH, _, _AT = os.environ.pop("EYRIE_BENCH_LAST_SPAWN", ":0").rpartition(":")
AT = int(_AT or 0)
PROFILE = os.environ.pop("EYRIE_BENCH_PROFILE", "")
EXIT_AT_SPAWN = os.environ.pop("EYRIE_BENCH_EXIT_AT_SPAWN", "") == "1"
_TICK = os.sysconf("SC_CLK_TCK")
_lock = threading.Lock()
_seen = 0
_note: dict[str, Any] = {}
_profile: Any = None


_turns = 0


def _moment() -> dict[str, float]:
    return {"monotonic": time.monotonic(), "cpu": time.process_time(), "turns": _turns}


def _counting_turns(run_once: Any) -> Any:
    def turn(loop: Any) -> Any:
        global _turns
        _turns += 1
        return run_once(loop)

    return turn


asyncio.base_events.BaseEventLoop._run_once = _counting_turns(  # type: ignore[attr-defined]
    asyncio.base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]
)


def _threads() -> dict[str, float]:
    """CPU seconds of each thread by name (``main`` for the process's first), from /proc."""
    spent: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "main" if int(tid) == os.getpid() else f"thread {tid}"
        spent[name] = (int(fields[11]) + int(fields[12])) / _TICK
    return spent


def _count() -> None:
    global _seen
    with _lock:
        _seen += 1
        seen = _seen
    if seen == 1:
        _note["first"] = _moment()
    if seen != AT:
        return
    if _profile is not None:
        _profile.disable()
        _profile.dump_stats(PROFILE)
    if EXIT_AT_SPAWN:
        os._exit(0)
    if _PATH:
        _note["last"] = _moment()
        _note["threads"] = _threads()
        with open(_PATH, "w", encoding="utf-8") as out:
            json.dump(_note, out)


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("os.posix_spawn", "subprocess.Popen"):
        _count()


def _counting(spawn: Any) -> Any:
    def call(*args: Any) -> Any:
        _count()
        return spawn(*args)

    return call


sys.addaudithook(_on_audit)
if _posix_spawn._CALLS is not None:
    _posix_spawn._CALLS.spawn = _counting(_posix_spawn._CALLS.spawn)

from supervisor.daemon.main import main  # noqa: E402  (after the hooks, as the daemon imports it)

PHASES = (
    "supervisor.daemon.reconciler:Reconciler.initial",
    "supervisor.daemon._checked_fleet:load_fleet",
    "supervisor.daemon._checked_fleet:declaration_problems",
    "supervisor.daemon._listeners:Listeners.bind",
    "supervisor.daemon.daemon:apply_journals",
    "supervisor.daemon.daemon:stop_unreadable",
    "supervisor.daemon.reconciler:Reconciler.apply",
    "supervisor.daemon.reconciler:last_applied",
    "supervisor.store:Store.index",
    "supervisor.daemon.reconciler:Reconciler._adopt_or_provision",
    "supervisor.daemon.reconciler:Reconciler._keep_applied",
    "supervisor.engine.actor:sweep",
    "supervisor.engine.stop:ProcScanner.table",
    "supervisor.engine.actor:check_port",
    "supervisor.engine._launch:_claim_and_probe",
    "supervisor.engine.actor:spawn_child",
    "supervisor.engine._launch:_confined_spawn",
    "supervisor.engine.actor:spawned_fields",
    "supervisor.engine._record:InstanceRecord.persist",
)


def _timed(name: str, function: Any) -> Any:
    """``function`` (sync or async) noting, per call, its start and end: monotonic and the thread's CPU."""
    import functools
    import inspect

    spans = _note.setdefault("phases", {}).setdefault(name, [])

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def waited(*args: Any, **kwargs: Any) -> Any:
            began = (time.monotonic(), time.thread_time())
            try:
                return await function(*args, **kwargs)
            finally:
                spans.append((*began, time.monotonic(), time.thread_time()))

        return waited

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        began = (time.monotonic(), time.thread_time(), threading.get_ident() == threading.main_thread().ident)
        try:
            return function(*args, **kwargs)
        finally:
            spans.append((*began[:2], time.monotonic(), time.thread_time(), began[2]))

    return called


if os.environ.pop("EYRIE_BENCH_PHASES", "") == "1":
    import importlib

    for where in PHASES:
        module_name, _, path = where.partition(":")
        owner: Any = importlib.import_module(module_name)
        *outer, attr = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        setattr(owner, attr, _timed(path, getattr(owner, attr)))

_note["imported"] = _moment()
if PROFILE:
    import cProfile

    _profile = cProfile.Profile()
    _profile.enable()
main()
