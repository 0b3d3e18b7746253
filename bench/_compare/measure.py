"""The one method, applied to any manager: its children are the processes that exec'd ``sleep`` below it,
seen by `ExecWatcher`; times run from ``time.monotonic_ns()`` taken right before the cause."""

from __future__ import annotations

import os
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bench._compare import procs
from bench._compare.proc_events import ExecEvent, ExecWatcher

__all__ = [
    "Storm",
    "Timer",
    "floors",
    "idle",
    "pct",
    "respawns",
    "settle",
    "start_all",
    "stop_all",
    "storm",
]

_SETTLE = 0.02


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def start_all(
    watcher: ExecWatcher, n: int, launch: Callable[[], int], timeout: float = 300
) -> tuple[int, float]:
    """Run the start command; the manager's pid and seconds until N children exec'd ``sleep``. Fails when
    the manager's threads do not hold N ``sleep`` children afterwards."""
    mark = watcher.mark()
    started = time.monotonic_ns()
    pid = launch()
    deadline = time.monotonic() + timeout
    while len(execs := watcher.wait_sleeps(pid, n, mark, set(), 1.0)) < n:
        if not procs.alive(pid):
            raise RuntimeError(f"the manager exited after {len(execs)} of {n} children exec'd sleep")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(execs)} of {n} children exec'd sleep within {timeout:.0f} s")
    held = procs.sleep_children(pid)
    if len(held) != n:
        raise RuntimeError(f"the manager holds {len(held)} sleep children, expected {n}")
    return pid, (execs[-1].at_ns - started) / 1e9


def settle(pid: int, least: float, most: float = 30.0, quiet: float = 2.0) -> float:
    """Wait ``least`` seconds, then until the manager used under ``quiet`` % of a core over a second (its
    start-up's deferred work done), ``most`` seconds at most; returns the seconds waited."""
    started = time.monotonic()
    time.sleep(least)
    while time.monotonic() - started < most:
        cpu = procs.cpu_seconds(pid)
        time.sleep(1.0)
        if (procs.cpu_seconds(pid) - cpu) * 100 < quiet:
            break
    return time.monotonic() - started


def idle(pid: int, seconds: float) -> tuple[float, float]:
    """RSS (MiB) at the end of an idle window and CPU over it, % of one core (children excluded)."""
    cpu = procs.cpu_seconds(pid)
    started = time.monotonic()
    time.sleep(seconds)
    used = procs.cpu_seconds(pid) - cpu
    return procs.rss_mib(pid), used / (time.monotonic() - started) * 100


def respawns(watcher: ExecWatcher, pid: int, samples: int, timeout: float = 10) -> tuple[list[float], int]:
    """SIGKILL one child at a time: ms until its replacement exec'd ``sleep``; and how many kills saw none."""
    latencies: list[float] = []
    missed = 0
    for i in range(samples):
        current = procs.sleep_children(pid)
        victim = sorted(current)[i % len(current)]
        mark = watcher.mark()
        killed = time.monotonic_ns()
        os.kill(victim, signal.SIGKILL)
        execs = watcher.wait_sleeps(pid, 1, mark, current, timeout)
        if execs:
            latencies.append((execs[0].at_ns - killed) / 1e6)
        else:
            missed += 1
        time.sleep(_SETTLE)
    return latencies, missed


class Timer(Protocol):
    """A client timing its own requests in a loop between `start` and `stop` (`clients.TimedClient`)."""

    def start(self) -> None: ...
    def stop(self) -> list[float]: ...


@dataclass
class Storm:
    """``killed`` children SIGKILLed at once: ms until all were back, each one's ms, how many never came, and
    the ms of each client request timed while they were in flight."""

    killed: int
    all_back_ms: float
    latencies: list[float]
    missing: int
    execs: list[ExecEvent]
    client_ms: list[float] = field(default_factory=list)


def storm(
    watcher: ExecWatcher,
    pid: int,
    victims: list[int],
    timeout: float = 60,
    during: Timer | None = None,
) -> Storm:
    """SIGKILL ``victims`` (children of ``pid``) at once; ``during`` times its requests in a loop from just
    before the kills until all are back (a client's load while the restarts are in flight)."""
    current = procs.sleep_children(pid)
    client_ms: list[float] = []
    if during is not None:
        during.start()
    try:
        mark = watcher.mark()
        killed = time.monotonic_ns()
        for victim in victims:
            os.kill(victim, signal.SIGKILL)
        execs = watcher.wait_sleeps(pid, len(victims), mark, current, timeout)
    finally:
        if during is not None:
            client_ms = during.stop()
    latencies = [(e.at_ns - killed) / 1e6 for e in execs]
    return Storm(
        len(victims),
        max(latencies, default=float("nan")),
        latencies,
        len(victims) - len(execs),
        execs,
        client_ms,
    )


def stop_all(pid: int, command: Callable[[], None], timeout: float = 120) -> float:
    """Seconds from the stop command to every ``sleep`` child of the manager gone (pidfds readable)."""
    children = procs.sleep_children(pid)
    if not children:
        raise RuntimeError(f"manager {pid} has no sleep children to stop")
    started = time.monotonic_ns()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            command()
        except Exception as exc:  # reported below: the figure is a lie if the command failed
            failure.append(exc)

    worker = threading.Thread(target=run, name="stop-command")
    worker.start()
    gone, alive = procs.wait_gone(children, timeout)
    worker.join()
    if failure:
        raise RuntimeError(f"the stop command failed: {failure[0]}")
    if alive:
        raise RuntimeError(f"{alive} children still alive {timeout:.0f} s after the stop command")
    return (gone - started) / 1e9


def _median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _run_quietly(argv: list[str]) -> None:
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)


def _kill_to_pidfd_ms() -> float:
    child = subprocess.Popen(["sleep", "infinity"])
    fd = os.pidfd_open(child.pid)
    try:
        started = time.perf_counter()
        os.kill(child.pid, signal.SIGKILL)
        select.select([fd], [], [], 5)
        return (time.perf_counter() - started) * 1000
    finally:
        os.close(fd)
        child.wait()


def floors(runs: int) -> list[tuple[str, float]]:
    """What no manager beats on this machine, in ms (medians of ``runs``; the import of fewer)."""
    return [
        (
            "python -c pass (spawn → exit)",
            _median_ms(lambda: _run_quietly([sys.executable, "-c", "pass"]), runs),
        ),
        (
            "python -c 'import supervisor.daemon.main' (spawn → exit)",
            _median_ms(
                lambda: _run_quietly([sys.executable, "-c", "import supervisor.daemon.main"]),
                max(3, runs // 3),
            ),
        ),
        ("SIGKILL → pidfd readable", statistics.median(_kill_to_pidfd_ms() for _ in range(runs))),
        ("Popen(['/bin/true']).wait()", _median_ms(lambda: subprocess.Popen(["/bin/true"]).wait(), runs * 3)),
    ]
