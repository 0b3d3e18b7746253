"""The floor under eyried's "start, provisioned": processes doing only the irreducible part of a start, timed
by bench.compare's method (launch → the N-th child exec'd ``sleep``, by the kernel's proc connector; the
process then holds exactly N ``sleep`` children, counted across its threads), beside eyried itself.

Per N and round, in turn (`bench._floor_child` is the floor process):

- ``interpreter + N spawns``: the interpreter, then N ``posix_spawn``s as the daemon makes them (own process
  group, a log file each, stdin from /dev/null);
- ``+ the libraries``: first the libraries eyried loads before its first spawn (anyio, click, pydantic with
  one model, ruamel.yaml, structlog);
- ``+ eyrie's modules``: first ``import supervisor.daemon.main`` as well (the daemon's imports, no work);
- ``eyried, provisioned``: ``python -m supervisor.daemon`` on a home its first start provisioned.

The gap from a row to the next is what that step adds: the last one is the daemon's own work before and
between its spawns (fleet file, store scan, port claims, runtime builds). Printed: median and range of the
rounds and the process's CPU when the N-th child had exec'd. Every process started is ended in a
``finally``, Ctrl-C included. Ports from ``EYRIE_BENCH_PORTS`` (default 45000–46999).

    .venv/bin/python -m bench.start_floor --sizes 50 200 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._compare import measure, procs
from bench._compare.eyried import Eyried
from bench._compare.proc_events import ExecWatcher
from bench._scratch import scratch_dir

FLOORS: dict[str, list[str]] = {
    "interpreter + N spawns": [],
    "+ the libraries": ["--libraries"],
    "+ eyrie's modules (import only)": ["--libraries", "--daemon-modules"],
}
EYRIED = "eyried, provisioned"


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def end_floor(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the floor process's children, then the process."""
    for child in procs.children(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def floor_round(
    watcher: ExecWatcher, n: int, flags: list[str], logs: Path, env: dict[str, str]
) -> tuple[float, float]:
    """Launch → N-th exec (s) of one floor process, and its CPU seconds by then."""
    logs.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "bench._floor_child", *flags, "--spawn", str(n), "--logs", str(logs)]
    launched: list[subprocess.Popen[bytes]] = []

    def launch() -> int:
        launched.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env))
        return launched[-1].pid

    try:
        pid, seconds = measure.start_all(watcher, n, launch)
        return seconds, procs.cpu_seconds(pid)
    finally:
        for proc in launched:
            end_floor(proc)


def eyried_round(watcher: ExecWatcher, daemon: Eyried) -> tuple[float, float]:
    try:
        pid, seconds = measure.start_all(watcher, daemon.n, daemon.launch)
        return seconds, procs.cpu_seconds(pid)
    finally:
        daemon.stop_daemon()


def measure_size(
    watcher: ExecWatcher, n: int, rounds: int, tmp: Path, env: dict[str, str]
) -> dict[str, list[tuple[float, float]]]:
    taken: dict[str, list[tuple[float, float]]] = {name: [] for name in [*FLOORS, EYRIED]}
    made = Eyried(tmp / f"n{n}", n, env)
    daemon: Eyried | None = made
    try:
        try:
            measure.start_all(watcher, n, made.launch)  # the first start provisions the home
        except RuntimeError as exc:
            print(f"N={n}: eyried not measured, its first start failed: {exc}", flush=True)
            made.close()
            daemon = None
        else:
            made.stop_daemon()
        for _ in range(rounds):
            for name, flags in FLOORS.items():
                taken[name].append(floor_round(watcher, n, flags, tmp / f"logs{n}", env))
            if daemon is not None:
                taken[EYRIED].append(eyried_round(watcher, daemon))
    finally:
        if daemon is not None:
            daemon.close()
    return {name: rows for name, rows in taken.items() if rows}


def table(n: int, taken: dict[str, list[tuple[float, float]]]) -> list[str]:
    lines = [
        f"N = {n} ({load()})",
        "",
        "| process | launch → N-th exec, median (range) | CPU by then, median | step over the row above |",
        "| --- | --- | --- | --- |",
    ]
    previous: float | None = None
    for name, rows in taken.items():
        walls = [wall for wall, _ in rows]
        median = statistics.median(walls)
        cpu = statistics.median(cpu for _, cpu in rows)
        step = f"+{(median - previous) * 1000:.0f} ms" if previous is not None else "—"
        lines.append(
            f"| {name} | {median:.3f} s ({min(walls):.3f}–{max(walls):.3f}) | {cpu:.2f} s | {step} |"
        )
        previous = median
    return [*lines, ""]


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that end the processes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    procs.raise_nofile()
    watcher = ExecWatcher()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {load()}", flush=True)
    if not watcher.kernel_clock:
        print(f"exec times: {watcher.unavailable}", flush=True)
    with scratch_dir("eyrie-start-floor-") as scratch:
        tmp = Path(scratch)
        env = {**os.environ, "EYRIE_BENCH_RUN": str(tmp)}
        started = time.monotonic()
        try:
            for n in args.sizes:
                for line in table(n, measure_size(watcher, n, args.rounds, tmp, env)):
                    print(line, flush=True)
        finally:
            watcher.close()
            procs.kill_marked(str(tmp))
        print(f"finished in {time.monotonic() - started:.0f} s ({load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
