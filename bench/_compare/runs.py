"""One manager at one N: every figure the method gives for it, in an order that leaves the fleet as the next
step needs it. Each run ends what it started before it returns or raises."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench._compare import clients, measure, storms
from bench._compare.eyried import Eyried
from bench._compare.proc_events import ExecWatcher
from bench._compare.supervisord import Supervisord
from bench._compare.systemd import Systemd

__all__ = ["Options", "run_eyried", "run_supervisord", "run_systemd", "say"]

_LEAST_PS_RUNS = 20


@dataclass(frozen=True)
class Options:
    idle: float
    samples: int
    storm: int
    storm_rounds: int
    settle: float
    marker: str
    """In every manager's environment (so its children's too): a crashed run's leftovers are found by it."""


@contextlib.contextmanager
def _explained(log_tail: Callable[[], str]) -> Iterator[None]:
    """A measurement that failed says so with the end of the manager's own log."""
    try:
        yield
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\n--- the manager's log (tail) ---\n{log_tail()}") from exc


def say(text: str) -> None:
    print(text, flush=True)


def _figures_of_respawns(out: dict[str, float], prefix: str, latencies: list[float]) -> None:
    out[f"{prefix}_p50"] = statistics.median(latencies) if latencies else float("nan")
    out[f"{prefix}_p95"] = measure.pct(latencies, 0.95) if latencies else float("nan")


def _steady(watcher: ExecWatcher, pid: int, opts: Options, out: dict[str, float], *, storm: bool) -> None:
    """Idle footprint, respawn latency and (at the largest N) a crash storm: the same for every manager."""
    settled = measure.settle(pid, opts.settle)
    out["rss"], out["idle_cpu"] = measure.idle(pid, opts.idle)
    say(
        f"    idle over {opts.idle:.0f} s (after {settled:.1f} s settling): RSS {out['rss']:.1f} MiB, "
        f"CPU {out['idle_cpu']:.3f} % of one core"
    )
    latencies, missed = measure.respawns(watcher, pid, opts.samples)
    _figures_of_respawns(out, "respawn", latencies)
    out["respawn_missed"] = missed
    say(
        f"    respawn ({len(latencies)} samples): "
        f"p50 {out['respawn_p50']:.1f} ms, p95 {out['respawn_p95']:.1f} ms"
    )
    if storm:
        results = storms.storm_rounds(watcher, pid, opts.storm, opts.storm_rounds)
        say("    " + storms.storm_figures(results, out))


class _Anchor(Protocol):
    """What the bench asks of an anchor manager (`Supervisord`, `Systemd`)."""

    def launch(self) -> int: ...
    def stop_fleet(self) -> None: ...
    def log_tail(self) -> str: ...
    def close(self) -> None: ...


def _run_anchor(
    manager: _Anchor, n: int, watcher: ExecWatcher, opts: Options, *, storm: bool
) -> dict[str, float]:
    """Start, the steady figures and the stop of an anchor; it is closed whatever happens."""
    out: dict[str, float] = {}
    try:
        with _explained(manager.log_tail):
            pid, out["start"] = measure.start_all(watcher, n, manager.launch)
            say(f"    start: {out['start']:.2f} s")
            _steady(watcher, pid, opts, out, storm=storm)
            out["stop"] = measure.stop_all(pid, manager.stop_fleet)
            say(f"    stop: {out['stop']:.2f} s")
    finally:
        manager.close()
    return out


def run_supervisord(
    root: Path, n: int, watcher: ExecWatcher, opts: Options, *, storm: bool
) -> dict[str, float]:
    manager = Supervisord(root, n, {**os.environ, "EYRIE_BENCH_RUN": opts.marker})
    return _run_anchor(manager, n, watcher, opts, storm=storm)


def run_systemd(root: Path, n: int, watcher: ExecWatcher, opts: Options, *, storm: bool) -> dict[str, float]:
    return _run_anchor(Systemd(root, n, opts.marker), n, watcher, opts, storm=storm)


def run_eyried(
    root: Path, n: int, watcher: ExecWatcher, opts: Options, *, storm: bool, notes: list[str]
) -> dict[str, float]:
    daemon = Eyried(root, n, {**os.environ, "EYRIE_BENCH_RUN": opts.marker})
    out: dict[str, float] = {}
    try:
        with _explained(daemon.log_tail):
            _, out["first_start"] = measure.start_all(watcher, n, daemon.launch)
            say(f"    first start (provisioning): {out['first_start']:.2f} s")
            daemon.stop_daemon()
            pid, out["start"] = measure.start_all(watcher, n, daemon.launch)
            say(f"    start, provisioned: {out['start']:.2f} s")
            _steady(watcher, pid, opts, out, storm=False)
            if storm:
                _eyried_storm(daemon, watcher, pid, opts, out)
            _reloads(daemon, out)
            out["stop"] = measure.stop_all(pid, daemon.stop_fleet_api)
            say(f"    stop of all (POST /v1/stop): {out['stop']:.2f} s")
            _start_all(daemon, watcher, pid)
            out["stop_cli"] = measure.stop_all(pid, daemon.stop_fleet)
            say(f"    eyriectl stop --all: {out['stop_cli']:.2f} s")
            _start_all(daemon, watcher, pid)
            pid = _adoption(daemon, watcher, out, notes)
            _confined(daemon, watcher, pid, opts, out)
    finally:
        daemon.close()
    return out


def _start_all(daemon: Eyried, watcher: ExecWatcher, pid: int) -> None:
    """``eyriectl start --all`` on a stopped fleet; returns once all N exec'd and the daemon says running."""
    mark = watcher.mark()
    daemon.ctl("start", "--all")
    execs = watcher.wait_sleeps(pid, daemon.n, mark, set(), 300)
    if len(execs) < daemon.n:
        raise RuntimeError(f"only {len(execs)} of {daemon.n} instances started")
    _settled_pids(daemon, {})


def _restarted(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(1 for name, pid in before.items() if after.get(name) != pid)


def _settled_pids(daemon: Eyried, old: dict[str, int], timeout: float = 60) -> dict[str, int]:
    """Name → pid once all N run again, each with a pid other than in ``old`` (the instances a reload
    restarted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = daemon.running_pids()
        if len(pids) == daemon.n and all(pids[name] != pid for name, pid in old.items() if name in pids):
            return pids
        time.sleep(0.05)
    raise RuntimeError(f"the fleet did not settle (all {daemon.n} running) within {timeout:.0f} s")


def _reloads(daemon: Eyried, out: dict[str, float]) -> None:
    before = _settled_pids(daemon, {})
    out["reload_same"], _ = daemon.reload()
    daemon.write_fleet(confined=False, changed="sleeper-0000")
    out["reload_one"], _ = daemon.reload()
    after = _settled_pids(daemon, {"sleeper-0000": before["sleeper-0000"]})
    out["reload_one_restarted"] = _restarted(before, after)
    say(
        f"    reload: no change {out['reload_same']:.1f} ms, one change {out['reload_one']:.1f} ms "
        f"({out['reload_one_restarted']:.0f} restarted)"
    )


def _adoption(daemon: Eyried, watcher: ExecWatcher, out: dict[str, float], notes: list[str]) -> int:
    """Two kill -9s of the daemon: one timed from the new daemon's exec to all adopted, one as the CLI
    sees it. Returns the last daemon's pid."""
    old = daemon.running_pids()
    daemon.kill_daemon()
    launched = time.monotonic_ns()
    pid = daemon.launch()
    exec_ns = watcher.exec_of(pid) or launched
    polled = daemon.wait_adopted(old)
    announced = daemon.daemon_event_ns(exec_ns)
    out["adoption"] = ((announced or polled) - exec_ns) / 1e9
    how = (
        "its own `daemon` event"
        if announced
        else "GET /v1/instances polled every 10 ms until all run with their old pids (no `daemon` event yet)"
    )
    note = f"adoption: from the new daemon's exec to {how}"
    if note not in notes:
        notes.append(note)
    restarted = _restarted(old, daemon.running_pids())
    old = daemon.running_pids()
    daemon.kill_daemon()
    launched = time.monotonic_ns()
    pid = daemon.launch()
    out["adoption_cli"] = (daemon.wait_adopted_cli(old) - launched) / 1e9
    out["adoption_restarts"] = restarted + _restarted(old, daemon.running_pids())
    say(
        f"    adoption: {out['adoption']:.2f} s, via the CLI {out['adoption_cli']:.2f} s, "
        f"{out['adoption_restarts']:.0f} restarted"
    )
    return pid


def _confined(daemon: Eyried, watcher: ExecWatcher, pid: int, opts: Options, out: dict[str, float]) -> None:
    """Stop all, reload into the default sandbox, start all (confined, children of this daemon), then the
    same respawn samples."""
    daemon.stop_fleet()
    daemon.write_fleet(confined=True, changed="sleeper-0000")
    daemon.reload()
    _start_all(daemon, watcher, pid)
    latencies, _ = measure.respawns(watcher, pid, opts.samples)
    _figures_of_respawns(out, "confined", latencies)
    say(f"    confined respawn: p50 {out['confined_p50']:.1f} ms, p95 {out['confined_p95']:.1f} ms")


def _eyried_storm(
    daemon: Eyried, watcher: ExecWatcher, pid: int, opts: Options, out: dict[str, float]
) -> None:
    """Storms with ``eyriectl ps`` in a loop and an SSE client counting the respawns it is told of, each in
    a process of its own; storms go on past ``--storm-rounds`` until ps ran `_LEAST_PS_RUNS` times."""
    with clients.EventClient(daemon) as stream, clients.TimedClient(daemon, "ps") as ps:
        results = storms.storm_rounds(
            watcher,
            pid,
            opts.storm,
            opts.storm_rounds,
            during=ps,
            between=lambda: _settled_pids(daemon, {}),
            least_client_runs=_LEAST_PS_RUNS,
        )
        respawned = {event.pid for result in results for event in result.execs}
        out["storm_events_missed"] = stream.missing(respawned)
    say("    " + storms.storm_figures(results, out))
    ps_times = [ms for result in results for ms in result.client_ms]
    out["storm_ps_p50"] = statistics.median(ps_times) if ps_times else float("nan")
    out["storm_ps_p95"] = measure.pct(ps_times, 0.95) if ps_times else float("nan")
    out["storm_ps_runs"] = len(ps_times)
    say(
        f"    ps during the storms ({len(ps_times)} runs, each timed by a process of its own): "
        f"p50 {out['storm_ps_p50']:.0f} ms, p95 {out['storm_ps_p95']:.0f} ms; respawns missing from the "
        f"event stream: {out['storm_events_missed']:.0f}"
    )
