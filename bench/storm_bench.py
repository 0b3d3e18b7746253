"""Crash storms at N = 1000: ``--kill`` agents SIGKILLed at once, ``--storms`` times, on one real ``eyried``.

Prints the daemon's CPU per listing of the quiet fleet (and per ``eyriectl ps`` request), then per storm:
all back (the last replacement's exec, by the kernel's clock), the p95 of each one's respawn, the daemon's
CPU from the kills until all are back and until it is quiet again, and the wall time of each client request
run in a loop while the restarts are in flight: ``eyriectl ps`` (``--during ps``, the default),
``GET /v1/instances`` (``--during get``: the daemon's share without the CLI's start-up) or nothing
(``--during none``); at the end, the first listing after a reload that changes nothing. The loop is timed
by a process of its own (``--timer process``), by a thread of this one as the bench did before
(``thread``), or by both in turn on the same daemon (``both``); ``--sse`` keeps an SSE client open through
the storms as ``bench.compare`` does. ``--profile PATH`` records the daemon with
py-spy during the storms (raw collapsed stacks, for ``bench/storm_bench.py --top PATH``).

The floors, measured the same way: ``--floors`` makes the timed loop take turns between ``eyriectl ps``,
``python -c pass`` and ``eyriectl --version`` (each a fresh process) during the same storms, and
``--quiet-loop SECONDS`` runs that loop on the quiet fleet before the storms. ``--phases PATH`` puts
`bench/_ps_probe` in every process of the run and prints, per ``eyriectl ps``, where its time went, from both
ends (``bench.ps_phases``).

    .venv/bin/python -m bench.storm_bench --size 1000 --kill 100 --storms 5

The fleet uses ``EYRIE_BENCH_PORTS`` (default 45000–46999); every process the run starts is ended in a
``finally``, Ctrl-C included, and its home's port claims are removed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

from bench import ps_phases
from bench._compare import client_proc, clients, measure, procs
from bench._compare.eyried import Eyried, own_env
from bench._compare.proc_events import ExecWatcher
from bench._scratch import release_claims
from supervisor.cli._quick_client import QuickClient
from supervisor.client import ControlClient

_QUIET_PERCENT = 5.0
_LISTINGS = 30


def say(text: str) -> None:
    print(text, flush=True)


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _quiet_cpu(pid: int, most: float = 10.0) -> float:
    """Wait until the daemon uses under `_QUIET_PERCENT` % of a core over 0.2 s; its CPU seconds then."""
    deadline = time.monotonic() + most
    while True:
        before = procs.cpu_seconds(pid)
        time.sleep(0.2)
        now = procs.cpu_seconds(pid)
        if (now - before) / 0.2 * 100 < _QUIET_PERCENT or time.monotonic() > deadline:
            return now


def _get_ms(daemon: Eyried) -> float:
    async def get() -> None:
        async with ControlClient(daemon.home) as client:
            await client.list_instances()

    started = time.perf_counter()
    anyio.run(get)
    return (time.perf_counter() - started) * 1000


def _listing_cpu_ms(daemon: Eyried, pid: int, runs: int = _LISTINGS) -> float:
    """The daemon's CPU (all its threads) per ``GET /v1/instances``, over ``runs`` in a row."""
    cpu = procs.cpu_seconds(pid)
    for _ in range(runs):
        _get_ms(daemon)
    return (procs.cpu_seconds(pid) - cpu) / runs * 1000


def _after_reload(daemon: Eyried) -> str:
    """A reload that changes nothing, then ``eyriectl ps``'s request twice: the first listing after it
    (``bench.compare``'s SSE client reloads right before its storms) and the one after that, in ms."""
    reload_ms, _ = daemon.reload()
    times = []
    with QuickClient(daemon.home) as client:
        for _ in range(2):
            started = time.perf_counter()
            client.get("/v1/instances?view=ps")
            times.append((time.perf_counter() - started) * 1000)
    return (
        f"a reload that changes nothing ({reload_ms:.0f} ms), then the ps request: "
        f"{times[0]:.0f} ms, and again {times[1]:.0f} ms ({_load()})"
    )


def _ps_request_cpu_ms(daemon: Eyried, pid: int, runs: int = _LISTINGS) -> float:
    """The daemon's CPU per request ``eyriectl ps`` makes (``view=ps``; an eyried without it answers the
    whole rows, as it did to ps), over ``runs`` in a row on one connection."""
    cpu = procs.cpu_seconds(pid)
    with QuickClient(daemon.home) as client:
        for _ in range(runs):
            client.get("/v1/instances?view=ps")
    return (procs.cpu_seconds(pid) - cpu) / runs * 1000


class _ThreadTimer:
    """The client loop timed in a thread of this process, as the bench did before its clients had processes
    of their own: each run's wall time then holds this process's other threads (the exec watcher, an SSE
    client in a thread) and a fork from a threaded process."""

    def __init__(self, daemon: Eyried, during: str) -> None:
        self._daemon, self._during = daemon, during
        self._done = threading.Event()
        self._times: list[float] = []
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        self._done.clear()
        self._times = []
        self._worker = threading.Thread(target=self._loop, name="storm-load")
        self._worker.start()

    def _loop(self) -> None:
        while not self._done.is_set():
            self._times.append(self._daemon.ps_ms() if self._during == "ps" else _get_ms(self._daemon))

    def stop(self) -> list[float]:
        self._done.set()
        if self._worker is not None:
            self._worker.join()
        return self._times


def _timers(daemon: Eyried, args: argparse.Namespace, stack: contextlib.ExitStack) -> list[measure.Timer]:
    """The timers the storms take turns with: the loop in a process of its own, in a thread of this one, or
    both alternately (the same daemon and storms, the two ways of timing side by side)."""
    if args.during == "none":
        return []
    timers: list[measure.Timer] = []
    if args.timer in ("process", "both"):
        what = "ps,pass,version" if args.floors and args.during == "ps" else args.during
        timers.append(stack.enter_context(clients.TimedClient(daemon, what)))
    if args.timer in ("thread", "both"):
        timers.append(_ThreadTimer(daemon, args.during))
    return timers


def _sse(daemon: Eyried, where: str, stack: contextlib.ExitStack) -> None:
    """An SSE client open through the storms (as `bench.compare` keeps one), in its own process or in a
    daemon thread of this one."""
    if where == "process":
        stack.enter_context(clients.EventClient(daemon))
    elif where == "thread":
        ready = threading.Event()
        pids: set[int] = set()
        home = str(daemon.home.root)
        threading.Thread(
            target=lambda: anyio.run(client_proc.follow_events, home, pids, ready), daemon=True
        ).start()
        if not ready.wait(30):
            raise RuntimeError("the event stream did not open")


def _storms(daemon: Eyried, watcher: ExecWatcher, pid: int, args: argparse.Namespace) -> None:
    all_back: list[float] = []
    latencies: list[float] = []
    cpu_back: list[float] = []
    cpu_quiet: list[float] = []
    client_times: dict[str, list[float]] = collections.defaultdict(list)
    window = time.monotonic()
    with contextlib.ExitStack() as stack:
        _sse(daemon, args.sse, stack)
        timers = _timers(daemon, args, stack)
        for i in range(args.storms):
            victims = sorted(procs.sleep_children(pid))[: args.kill]
            timer = timers[i % len(timers)] if timers else None
            where = "thread" if isinstance(timer, _ThreadTimer) else "process"
            cpu = procs.cpu_seconds(pid)
            began = time.monotonic()
            result = measure.storm(watcher, pid, victims, during=timer)
            args.windows["during the storms"].append((began, time.monotonic()))
            back_cpu = procs.cpu_seconds(pid) - cpu
            quiet_cpu = _quiet_cpu(pid) - cpu
            all_back.append(result.all_back_ms)
            latencies += result.latencies
            cpu_back.append(back_cpu * 1000)
            cpu_quiet.append(quiet_cpu * 1000)
            times = result.client_ms
            client_times[where] += times
            client = (
                f", {args.during} timed in a {where} p50 {statistics.median(times):.0f} "
                f"max {max(times):.0f} ms ({len(times)} runs)"
                if times
                else ""
            )
            say(
                f"storm {i + 1}: {result.killed} killed, all back {result.all_back_ms:.0f} ms, "
                f"p95 {measure.pct(result.latencies, 0.95) if result.latencies else float('nan'):.0f} ms, "
                f"{result.missing} never back, daemon CPU {back_cpu * 1000:.0f} ms to all back, "
                f"{quiet_cpu * 1000:.0f} ms to quiet{client} ({_load()})"
            )
            time.sleep(0.5)
    say(
        f"\n{args.storms} storms of {args.kill} at N = {args.size}: all back median "
        f"{statistics.median(all_back):.0f} ms, p95 of each respawn {measure.pct(latencies, 0.95):.0f} ms, "
        f"daemon CPU per storm {statistics.median(cpu_back):.0f} ms to all back, "
        f"{statistics.median(cpu_quiet):.0f} ms to quiet"
    )
    for where, times in client_times.items():
        if times:
            say(
                f"{args.during} during the storms, timed in a {where} ({len(times)} runs): p50 "
                f"{statistics.median(times):.0f} ms, p95 {measure.pct(times, 0.95):.0f} ms"
            )
        for timer in timers:
            for name, times in getattr(timer, "others", {}).items():
                say(
                    f"{_FLOOR_NAMES[name]} during the same storms, timed the same way ({len(times)} runs): "
                    f"p50 {statistics.median(times):.0f} ms, p95 {measure.pct(times, 0.95):.0f} ms"
                )
    say(f"storms from monotonic {window:.3f} to {time.monotonic():.3f} s (bench.gc_pauses); ({_load()})")


_FLOOR_NAMES = {"pass": "python -c pass", "version": "eyriectl --version", "ps": "eyriectl ps"}


def _quiet_loop(daemon: Eyried, args: argparse.Namespace) -> None:
    """The timed loop of the storms on the quiet fleet, for ``args.quiet_loop`` seconds."""
    what = "ps,pass,version" if args.floors else "ps"
    with clients.TimedClient(daemon, what) as timer:
        began = time.monotonic()
        timer.start()
        time.sleep(args.quiet_loop)
        runs = {"ps": timer.stop(), **timer.others}
        args.windows["on the quiet fleet"].append((began, time.monotonic()))
    for name, times in runs.items():
        say(
            f"{_FLOOR_NAMES[name]} on the quiet fleet ({len(times)} runs): "
            f"p50 {statistics.median(times):.0f} ms, p95 {measure.pct(times, 0.95):.0f} ms ({_load()})"
        )


def _profiler(pid: int, path: str | None) -> subprocess.Popen[bytes] | None:
    if path is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-r", "500", "-f", "raw", "-o", path, "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def top(path: str, count: int = 40) -> None:
    """The functions with most samples in a py-spy raw file: own (the frame on top) and total (anywhere)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        seen = int(count_text)
        samples += seen
        own[frames[-1]] += seen
        for frame in set(frames):
            total[frame] += seen
    say(f"{samples} samples\n\nown:")
    for frame, seen in own.most_common(count):
        say(f"{seen / samples * 100:6.1f}%  {frame}")
    say("\ntotal:")
    for frame, seen in total.most_common(count):
        say(f"{seen / samples * 100:6.1f}%  {frame}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--kill", type=int, default=100, help="agents SIGKILLed at once per storm")
    parser.add_argument("--storms", type=int, default=5)
    parser.add_argument("--during", choices=["ps", "get", "none"], default="ps")
    parser.add_argument(
        "--timer",
        choices=["process", "thread", "both"],
        default="process",
        help="where the client loop is timed: a process of its own, a thread of this one, or both in turn",
    )
    parser.add_argument(
        "--sse",
        choices=["none", "process", "thread"],
        default="none",
        help="an SSE client open through the storms, in a process of its own or a thread of this one",
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="the ps loop takes turns with python -c pass and eyriectl --version, timed the same way",
    )
    parser.add_argument(
        "--quiet-loop",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the ps loop on the quiet fleet first",
    )
    parser.add_argument(
        "--phases", metavar="PATH", help="where each eyriectl ps spent its time (bench._ps_probe)"
    )
    parser.add_argument("--profile", metavar="PATH", help="py-spy raw stacks of the daemon during the storms")
    parser.add_argument("--top", metavar="PATH", help="print the top functions of a py-spy raw file; no run")
    args = parser.parse_args(argv)
    args.windows = {"on the quiet fleet": [], "during the storms": []}
    if args.top:
        top(args.top)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    procs.raise_nofile()
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {_load()}")
    watcher = ExecWatcher()
    if not watcher.kernel_clock:
        say(f"exec times: {watcher.unavailable}")
    if args.phases:
        Path(args.phases).unlink(missing_ok=True)
        probe = str(Path(__file__).parent / "_ps_probe")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [probe, os.environ.get("PYTHONPATH")]))
        os.environ["EYRIE_PS_PHASES"] = args.phases
    run_dir = Path(tempfile.mkdtemp(prefix="eyrie-storm-"))
    daemon = Eyried(run_dir, args.size, own_env(str(run_dir)))
    spy: subprocess.Popen[bytes] | None = None
    try:
        pid, took = measure.start_all(watcher, args.size, daemon.launch)
        say(f"N = {args.size}: all exec'd in {took:.2f} s (first start, provisioning)")
        measure.settle(pid, 2.0)
        say(f"first eyriectl ps: {daemon.ps_ms():.0f} ms; the next: {daemon.ps_ms():.0f} ms ({_load()})")
        say(f"daemon CPU per listing, quiet fleet: {_listing_cpu_ms(daemon, pid):.1f} ms ({_load()})")
        say(f"daemon CPU per eyriectl ps request, quiet fleet: {_ps_request_cpu_ms(daemon, pid):.1f} ms")
        if args.quiet_loop:
            _quiet_loop(daemon, args)
        spy = _profiler(pid, args.profile)
        _storms(daemon, watcher, pid, args)
        say(_after_reload(daemon))
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        daemon.close()
        watcher.close()
        procs.kill_marked(str(run_dir))
        shutil.rmtree(run_dir, ignore_errors=True)
        release_claims(str(run_dir))
    if args.phases:
        for title, windows in args.windows.items():
            if windows:
                ps_phases.report(args.phases, windows, title=title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
