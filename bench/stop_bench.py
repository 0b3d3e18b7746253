"""Fleet stop, in rounds: a daemon with N ``sleep`` children, ``POST /v1/stop`` of every name from this
process (as bench.compare's "stop of the whole fleet" row), timed until every child's pidfd is readable; the
daemon's CPU during it; then ``eyriectl start --all`` and the next round.

    .venv/bin/python -m bench.stop_bench --size 200 --rounds 5

Ports come from ``EYRIE_BENCH_PORTS=FIRST-LAST`` (bench._compare.eyried). Every process it starts carries
``EYRIE_BENCH_RUN=<its run dir>`` and is ended on the way out, Ctrl-C included. Exits non-zero only when it
could not measure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from bench._compare import measure, procs
from bench._compare.eyried import Eyried
from bench._compare.proc_events import ExecWatcher
from bench._compare.runs import _start_all
from bench._scratch import release_claims


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _rounds(daemon: Eyried, watcher: ExecWatcher, rounds: int, cli: bool) -> list[tuple[float, float]]:
    pid, started = measure.start_all(watcher, daemon.n, daemon.launch)
    print(f"start: {started:.2f} s ({_load()})", flush=True)
    measure.settle(pid, 1.0)
    figures = []
    for i in range(rounds):
        cpu = procs.cpu_seconds(pid)
        seconds = measure.stop_all(pid, daemon.stop_fleet if cli else daemon.stop_fleet_api)
        time.sleep(0.5)
        used = procs.cpu_seconds(pid) - cpu
        figures.append((seconds, used))
        print(f"round {i + 1}: stop {seconds * 1000:.0f} ms, daemon CPU (+0.5 s) {used:.2f} s ({_load()})")
        if i + 1 < rounds:
            _start_all(daemon, watcher, pid)
            measure.settle(pid, 1.0)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stop_bench", description=__doc__)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cli", action="store_true", help="stop with `eyriectl stop --all` instead")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    procs.raise_nofile()
    watcher = ExecWatcher()
    run_dir = Path(tempfile.mkdtemp(prefix="eyrie-stop-bench-"))
    daemon = Eyried(run_dir, args.size, {**os.environ, "EYRIE_BENCH_RUN": str(run_dir)})
    try:
        figures = _rounds(daemon, watcher, args.rounds, args.cli)
    except (RuntimeError, OSError) as exc:
        print(f"could not measure: {exc}\n{daemon.log_tail()}", file=sys.stderr)
        return 1
    finally:
        daemon.close()
        watcher.close()
        procs.kill_marked(str(run_dir))
        release_claims(str(run_dir))
        shutil.rmtree(run_dir, ignore_errors=True)
    stops = sorted(seconds for seconds, _ in figures)
    cpus = sorted(used for _, used in figures)
    print(
        f"N={args.size}: stop median {statistics.median(stops) * 1000:.0f} ms"
        f" (min {stops[0] * 1000:.0f}, max {stops[-1] * 1000:.0f}),"
        f" daemon CPU median {statistics.median(cpus):.2f} s ({_load()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
