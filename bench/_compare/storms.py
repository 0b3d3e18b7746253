"""Crash storms: ``--storm`` children SIGKILLed at once, ``--storm-rounds`` times; for eyried with
``eyriectl ps`` run in a loop while the restarts are in flight (timed by a process of its own,
`clients.TimedClient`) and an SSE client checking that it is told of every respawn."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench._compare import measure, procs
from bench._compare.proc_events import ExecWatcher

__all__ = ["storm_figures", "storm_rounds"]

_BETWEEN_ROUNDS = 0.5
_MOST_ROUNDS_FACTOR = 4


def storm_rounds(
    watcher: ExecWatcher,
    pid: int,
    size: int,
    rounds: int,
    during: measure.Timer | None = None,
    between: Callable[[], object] | None = None,
    least_client_runs: int = 0,
) -> list[measure.Storm]:
    """``rounds`` storms of the ``size`` lowest-numbered children, more (up to four times as many) until
    ``during`` timed ``least_client_runs`` requests in all, so that its p95 is not its worst run; ``between``
    runs after each (a fleet settling before the next)."""
    results: list[measure.Storm] = []
    while len(results) < rounds or (
        sum(len(r.client_ms) for r in results) < least_client_runs
        and len(results) < rounds * _MOST_ROUNDS_FACTOR
    ):
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
