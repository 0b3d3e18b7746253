"""A bench client in a process of its own, driven over its stdin, answering on its stdout (a JSON line each).

Timed in the bench's own process, an ``eyriectl ps`` waited for the bench's other threads (the proc-connector
reader, an SSE client) to let go of the GIL and was forked from a threaded process: its wall time held the
bench's own work. Here a process that does nothing else times each run.

    python -m bench._compare.client_proc ps HOME      # "run" → `eyriectl ps` in a loop; "stop" → [[name, ms]]
    python -m bench._compare.client_proc get HOME     # the same with GET /v1/instances from this process
    python -m bench._compare.client_proc ps,pass,version HOME  # each run the next of: eyriectl ps,
                                                      # python -c pass, eyriectl --version (the floors)
    python -m bench._compare.client_proc events HOME  # an SSE client; a JSON list of pids → how many of them
                                                      # no `running` transition named (after up to 10 s)

Each prints ``"ready"`` once it can start; it exits when its stdin closes (the SSE client's thread with it).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["follow_events", "main"]

EYRIECTL = str(Path(sys.executable).parent / "eyriectl")
_MISSING_WAIT = 10.0
_RUN_TIMEOUT = 120.0


def _answer(value: object) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _stdin_waiting() -> bool:
    return bool(select.select([sys.stdin], [], [], 0)[0])


def _command(argv: list[str]) -> Callable[[], None]:
    """Run ``argv`` to its end, seen at once through a pidfd: ``subprocess.run(timeout=…)`` polls for the
    end with sleeps growing to 50 ms, which added 0–50 ms to every run this loop timed."""

    def run() -> None:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            ended = os.pidfd_open(child.pid)
            try:
                if not select.select([ended], [], [], _RUN_TIMEOUT)[0]:
                    raise subprocess.TimeoutExpired(argv, _RUN_TIMEOUT)
            finally:
                os.close(ended)
        finally:
            if child.poll() is None:
                child.kill()
            code = child.wait()
        if code != 0:
            raise subprocess.CalledProcessError(code, argv)

    return run


def _action(what: str, home: str) -> Callable[[], None]:
    if what == "get":
        return _get(home)
    return _command(
        {
            "ps": [EYRIECTL, "--home", home, "ps"],
            "pass": [sys.executable, "-c", "pass"],
            "version": [EYRIECTL, "--version"],
        }[what]
    )


def _get(home: str) -> Callable[[], None]:
    import anyio

    from supervisor.client import ControlClient
    from supervisor.paths import Home

    async def get() -> None:
        async with ControlClient(Home(Path(home))) as client:
            await client.list_instances()

    return lambda: anyio.run(get)


def _timed_loop(actions: list[tuple[str, Callable[[], None]]]) -> None:
    """ "run" starts the loop, each run the next of ``actions`` in turn; it ends after the run in flight
    when a line arrives ("stop"): each run's name and time, ms."""
    _answer("ready")
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        times: list[tuple[str, float]] = []
        while not _stdin_waiting():
            name, action = actions[len(times) % len(actions)]
            started = time.perf_counter()
            action()
            times.append((name, (time.perf_counter() - started) * 1000))
        sys.stdin.readline()  # the "stop"
        _answer(times)


async def follow_events(home: str, pids: set[int], ready: threading.Event) -> None:
    """Add to ``pids`` the pid of every ``running`` transition; ``ready`` once the stream is live."""
    import anyio

    from supervisor.client import ControlClient
    from supervisor.paths import Home

    async with ControlClient(Home(Path(home))) as client, client.events() as events:
        # The stream is live once it carries an event this client caused after opening it.
        await client.reload()
        with anyio.fail_after(10):
            async for event in events:
                if event.event == "reload":
                    break
        ready.set()
        async for event in events:
            if event.event == "transition" and event.to_status == "running" and event.pid:
                pids.add(event.pid)


def _events(home: str) -> None:
    import anyio

    pids: set[int] = set()
    ready = threading.Event()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            anyio.run(follow_events, home, pids, ready)
        except Exception as exc:  # told to the bench instead of "ready" or of a count
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=follow, name="sse-client", daemon=True)
    thread.start()
    ready.wait(30)
    _answer("ready" if not failure and ready.is_set() else f"the event stream did not open: {failure}")
    for line in sys.stdin:
        expected = set(json.loads(line))
        deadline = time.monotonic() + _MISSING_WAIT
        while expected - pids and time.monotonic() < deadline and not failure:
            time.sleep(0.05)
        _answer(len(expected - pids))


def main(argv: list[str]) -> int:
    what, home = argv
    if what == "events":
        _events(home)
    else:
        _timed_loop([(name, _action(name, home)) for name in what.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
