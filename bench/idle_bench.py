"""Idle benchmark: a real ``eyried`` with N sleeper instances (liveness ``process`` every 10 s), left alone,
its CPU and wake-ups read from ``/proc`` over a window.

Clock ticks (``utime + stime``, 10 ms each) are too coarse for a share of 0.15 % of a core: a 60 s window
holds 9 of them. So each thread's ``schedstat`` (nanoseconds on a CPU) is read at both ends of the window,
and its context switches: a voluntary one is the thread going to sleep, i.e. one wake-up. A thread born during
the window counts from zero; one that ended during it is lost to the nanosecond figure (it is counted, and
the tick figure still holds its time). The workload is `bench.compare`'s (``bench._compare.eyried``), so
``EYRIE_BENCH_PORTS=FIRST-LAST`` moves its port range.

    .venv/bin/python -m bench.idle_bench --sizes 200 --idle 120
    EYRIE_BENCH_PORTS=53000-54999 .venv/bin/python -m bench.idle_bench --sizes 1000 --idle 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from bench._compare import measure, procs
from bench._compare.eyried import Eyried, own_env
from bench._scratch import scratch_dir
from supervisor.errors import DaemonNotRunning


@dataclass(frozen=True, slots=True)
class _Thread:
    name: str
    run_ns: int
    voluntary: int
    involuntary: int


def _threads(pid: int) -> dict[int, _Thread]:
    """Every live thread of ``pid``: its name, time on a CPU and context switches so far."""
    found: dict[int, _Thread] = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{entry}"
        with contextlib.suppress(OSError, ValueError, IndexError):
            run_ns = int(Path(f"{base}/schedstat").read_text().split()[0])
            lines = Path(f"{base}/status").read_text().splitlines()
            status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
            found[int(entry)] = _Thread(
                status["Name"].strip(),
                run_ns,
                int(status["voluntary_ctxt_switches"]),
                int(status["nonvoluntary_ctxt_switches"]),
            )
    return found


def _wait_running(daemon: Eyried, n: int, timeout: float = 600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(DaemonNotRunning, OSError):
            if len(daemon.running_pids()) == n:
                return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"not all {n} instances running after {timeout:.0f} s:\n{daemon.log_tail()}")


def _window(pid: int, seconds: float) -> None:
    """Print what the daemon used over ``seconds`` of idleness."""
    ticks = procs.cpu_seconds(pid)
    before = _threads(pid)
    started = time.monotonic()
    time.sleep(seconds)
    after = _threads(pid)
    ticks = procs.cpu_seconds(pid) - ticks
    elapsed = time.monotonic() - started
    zero = _Thread("", 0, 0, 0)
    main_before, main_after = before.get(pid, zero), after[pid]
    run_ns = sum(t.run_ns - before.get(tid, zero).run_ns for tid, t in after.items())
    others_wakes = sum(
        t.voluntary - before.get(tid, zero).voluntary for tid, t in after.items() if tid != pid
    )
    born = len(after.keys() - before.keys())
    ended = len(before.keys() - after.keys())
    per_s = 1 / elapsed
    print(f"  window {elapsed:.0f} s, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    loop_ns = main_after.run_ns - main_before.run_ns
    print(f"  CPU, clock ticks:         {ticks / elapsed * 100:.3f} % of one core ({ticks * 100:.0f} ticks)")
    print(f"  CPU, schedstat (threads): {run_ns / 1e9 / elapsed * 100:.3f} % of one core")
    print(f"  CPU, event-loop thread:   {loop_ns / 1e9 * per_s * 100:.3f} %")
    print(f"  event-loop wake-ups:      {(main_after.voluntary - main_before.voluntary) * per_s:.2f} /s")
    print(f"  other threads' wake-ups:  {others_wakes * per_s:.2f} /s")
    print(f"  threads: {len(before)} at the start, {len(after)} at the end, {born} born, {ended} ended")
    for tid, t in sorted(after.items()):
        was = before.get(tid, zero)
        used = (t.run_ns - was.run_ns) / 1e9 * per_s * 100
        wakes = (t.voluntary - was.voluntary) * per_s
        print(f"    thread {tid} {t.name!r}: {used:.3f} %, {wakes:.2f} wake-ups/s")
    print(f"  RSS {procs.rss_mib(pid):.1f} MiB")


def run(n: int, idle: float, settle: float) -> None:
    with scratch_dir("eyrie-idle-") as root:
        marker = root
        daemon = Eyried(Path(root), n, own_env(marker))
        try:
            pid = daemon.launch()
            took = _wait_running(daemon, n)
            settled = measure.settle(pid, settle)
            print(f"N = {n}: all running after {took:.1f} s, settled {settled:.1f} s more")
            _window(pid, idle)
        finally:
            daemon.stop_daemon()
            procs.kill_marked(marker)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200])
    parser.add_argument("--idle", type=float, default=120.0, help="idle window in seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds at least before the window")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a killed bench still stops its daemon
    procs.raise_nofile()
    for n in args.sizes:
        run(n, args.idle, args.settle)


if __name__ == "__main__":
    main()
