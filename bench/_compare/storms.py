"""Crash storms: ``--storm`` children SIGKILLed at once, ``--storm-rounds`` times; for eyried with
``eyriectl ps`` run in a loop while the restarts are in flight and an SSE client checking that it is told of
every respawn."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from bench._compare import measure, procs
from bench._compare.eyried import Eyried
from bench._compare.proc_events import ExecWatcher
from supervisor.client import ControlClient

__all__ = ["EventCount", "storm_figures", "storm_rounds"]

_BETWEEN_ROUNDS = 0.5


def storm_rounds(
    watcher: ExecWatcher,
    pid: int,
    size: int,
    rounds: int,
    during: Callable[[], None] | None = None,
    between: Callable[[], object] | None = None,
) -> list[measure.Storm]:
    """``rounds`` storms of the ``size`` lowest-numbered children; ``between`` runs after each (a fleet
    settling before the next)."""
    results = []
    for _ in range(rounds):
        victims = sorted(procs.sleep_children(pid))[:size]
        results.append(measure.storm(watcher, pid, victims, during=during))
        if between is not None:
            between()
        time.sleep(_BETWEEN_ROUNDS)
    return results


def storm_figures(results: list[measure.Storm], out: dict[str, float]) -> str:
    """The storm rows: median over rounds of the time until all were back, p95 over every respawn of every
    round, and the ones that never came back; returns a line saying so."""
    latencies = [ms for result in results for ms in result.latencies]
    out["storm_all_back"] = statistics.median(r.all_back_ms for r in results)
    out["storm_p95"] = measure.pct(latencies, 0.95) if latencies else float("nan")
    out["storm_missing"] = sum(r.missing for r in results)
    killed = results[0].killed if results else 0
    return (
        f"storm of {killed} × {len(results)}: all back {out['storm_all_back']:.1f} ms (median), "
        f"p95 {out['storm_p95']:.1f} ms, {out['storm_missing']:.0f} never came back"
    )


@dataclass
class EventCount:
    """An SSE client of the daemon in a thread of its own: the pids its ``running`` transitions name."""

    daemon: Eyried
    pids: set[int] = field(default_factory=set)
    ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    failure: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sse-client")

    def __enter__(self) -> EventCount:
        self._thread.start()
        if not self.ready.wait(30):
            raise RuntimeError(f"the event stream did not open: {self.failure}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self._thread.is_alive():
            self.daemon.reload()  # an event to wake the client, which then sees it is done
        self._thread.join(30)

    def missing(self, expected: set[int], timeout: float = 10) -> int:
        """How many of ``expected`` the stream has not reported running, after waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while expected - self.pids and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(expected - self.pids)

    def _run(self) -> None:
        try:
            anyio.run(self._follow)
        except Exception as exc:  # reported by __enter__ or as missing events
            self.failure.append(exc)
            self.ready.set()

    async def _follow(self) -> None:
        async with ControlClient(self.daemon.home) as client, client.events() as events:
            # The stream is live once it carries an event this client caused after opening it.
            await client.reload()
            with anyio.fail_after(10):
                async for event in events:
                    if event.event == "reload":
                        break
            self.ready.set()
            async for event in events:
                if event.event == "transition" and event.to_status == "running" and event.pid:
                    self.pids.add(event.pid)
                elif event.event == "reload" and self.done.is_set():
                    return
