"""The floor under eyried's idle RSS: processes holding only what the daemon cannot do without, measured by
bench.compare's method (settle, then ``VmRSS`` at the end of an idle window), beside eyried itself.

Per round, in turn (`bench._floor_child` is the floor process):

- ``the interpreter``: nothing imported beyond what ``python -m`` loads;
- ``the libraries, imported``: anyio, click, pydantic with one model, ruamel.yaml, structlog (what eyried
  loads before its first spawn);
- ``the libraries, serving``: those plus starlette and uvicorn, an empty Starlette app served on a Unix
  socket, with eyried's malloc settings (one arena, the heap trimmed once serving);
- ``+ eyrie's modules (import only)``: the libraries and ``import supervisor.daemon.main``, not serving;
- ``+ eyrie's modules, serving``: both, the empty app served as above: the floor the daemon is measured
  against (the two above overlap, so their gaps over the libraries do not add up);
- ``eyried, N instances, serving``: the daemon on a home of N ``sleep`` instances (``--sizes``, default 0).

Printed: median ``VmRSS`` and its anonymous and file-backed parts (``RssAnon``, ``RssFile``). Every process
started is ended in a ``finally``, Ctrl-C included. Ports from ``EYRIE_BENCH_PORTS`` (default 45000–46999).

    .venv/bin/python -m bench.rss_floor --rounds 3 --idle 10 --sizes 0 200
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._compare import measure, procs
from bench._compare.eyried import Eyried
from bench._compare.proc_events import ExecWatcher
from bench._scratch import scratch_dir
from supervisor.errors import DaemonNotRunning

FLOORS: dict[str, list[str]] = {
    "the interpreter": [],
    "the libraries, imported": ["--libraries"],
    "the libraries, serving (+ starlette, uvicorn)": ["--libraries", "--serve"],
    "+ eyrie's modules (import only)": ["--libraries", "--daemon-modules"],
    "+ eyrie's modules, serving": ["--libraries", "--daemon-modules", "--serve"],
}


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def memory(pid: int) -> tuple[float, float, float]:
    """VmRSS, RssAnon and RssFile of ``pid`` in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["RssAnon"], found["RssFile"]


def wait_serving(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the floor process exited {proc.returncode}")
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(path))
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing served on {path} within {timeout:.0f} s")


def floor_round(
    flags: list[str], tmp: Path, env: dict[str, str], opts: argparse.Namespace
) -> tuple[float, ...]:
    argv = [sys.executable, "-m", "bench._floor_child", *flags]
    path = tmp / "floor.sock"
    path.unlink(missing_ok=True)
    if "--serve" in flags:
        argv.append(str(path))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
    try:
        if "--serve" in flags:
            wait_serving(path, proc)
        measure.settle(proc.pid, opts.settle)
        measure.idle(proc.pid, opts.idle)
        return memory(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def wait_daemon_serving(daemon: Eyried, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise RuntimeError(f"eyried exited {daemon.proc.returncode}: {daemon.log_tail()}")
        with contextlib.suppress(DaemonNotRunning):
            if len(daemon.running_pids()) == daemon.n:
                return
        time.sleep(0.05)
    raise RuntimeError(f"eyried did not serve all {daemon.n} running within {timeout:.0f} s")


def eyried_round(daemon: Eyried, watcher: ExecWatcher, opts: argparse.Namespace) -> tuple[float, ...]:
    try:
        if daemon.n:
            pid, _ = measure.start_all(watcher, daemon.n, daemon.launch)
        else:
            pid = daemon.launch()
        wait_daemon_serving(daemon)
        measure.settle(pid, opts.settle)
        measure.idle(pid, opts.idle)
        return memory(pid)
    finally:
        daemon.stop_daemon()


def row(name: str, taken: list[tuple[float, ...]]) -> str:
    rss, anon, file = (statistics.median(values) for values in zip(*taken, strict=True))
    spread = f"{min(t[0] for t in taken):.1f}–{max(t[0] for t in taken):.1f}"
    return f"| {name} | {rss:.1f} MiB ({spread}) | {anon:.1f} MiB | {file:.1f} MiB |"


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that end the processes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[0])
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    procs.raise_nofile()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {load()}", flush=True)
    watcher = ExecWatcher()
    with scratch_dir("eyrie-rss-floor-") as scratch:
        tmp = Path(scratch)
        env = {**os.environ, "EYRIE_BENCH_RUN": str(tmp)}
        env.pop("NOTIFY_SOCKET", None)
        taken: dict[str, list[tuple[float, ...]]] = {}
        daemons = {f"eyried, N={n}, serving": Eyried(tmp / f"n{n}", n, env) for n in opts.sizes}
        try:
            for daemon in daemons.values():
                if daemon.n:  # provisioned first, as bench.compare's RSS is taken after a second start
                    measure.start_all(watcher, daemon.n, daemon.launch)
                    daemon.stop_daemon()
            for _ in range(opts.rounds):
                for name, flags in FLOORS.items():
                    taken.setdefault(name, []).append(floor_round(flags, tmp, env, opts))
                for name, daemon in daemons.items():
                    taken.setdefault(name, []).append(eyried_round(daemon, watcher, opts))
        finally:
            for daemon in daemons.values():
                daemon.close()
            watcher.close()
            procs.kill_marked(str(tmp))
    print(f"\n{opts.rounds} rounds, idle {opts.idle:.0f} s after settling ({load()})\n")
    print("| process | VmRSS, median (range) | anonymous | file-backed |")
    print("| --- | --- | --- | --- |")
    for name, rows in taken.items():
        print(row(name, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
