"""What a provisioned start of ``eyried`` imports and spends before its first agent spawn.

One home of N ``sleep infinity`` instances (``sandbox: off``) is provisioned by a first start; then, per
round, a daemon is launched under ``bench._first_spawn`` and stopped once all N run. Printed: launch → first
spawn (wall), the daemon's CPU until then, and how many modules it had loaded, as medians over the rounds;
then the import-only floors measured spawn → exit (wall and CPU, median of ``--floor-runs``). ``--importtime``
adds the largest ``-X importtime`` entries (self time) among the imports before the first spawn, by top-level
package. ``--instructions RUNS`` adds the instructions the daemon executes up to its first spawn, counted by
``valgrind --tool=callgrind`` in RUNS runs that end at the spawn: whatever the load, though the worker
threads' share before the spawn varies by ~5 % from run to run (the import alone varies by 0.3 %).
``--modules FILE`` writes the modules loaded by the first spawn. ``--memory`` prints what each import adds
to the memory of a fresh process (`bench._import_memory`): VmRSS after each library and then eyrie's
modules, and the Python heap (tracemalloc) of ``import supervisor.daemon.main`` by the module that made it.
Ports from ``EYRIE_BENCH_PORTS`` (default 45000–46999).

    .venv/bin/python -m bench.start_imports --size 200 --rounds 5 --importtime --instructions 3
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._compare.eyried import Eyried, own_env
from bench._scratch import scratch_dir
from supervisor.errors import DaemonNotRunning

FLOORS = {
    "python -c pass": "pass",
    "import the libraries": "import anyio, pydantic, structlog, ruamel.yaml, click",
    "import supervisor.daemon.main": "import supervisor.daemon.main",
}


def say(text: str) -> None:
    print(f"{text}  [load {' '.join(f'{x:.2f}' for x in os.getloadavg())}]", flush=True)


def wait_running(daemon: Eyried, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise RuntimeError(f"eyried exited {daemon.proc.returncode}: {daemon.log_tail()}")
        with contextlib.suppress(DaemonNotRunning):  # not serving yet
            if len(daemon.running_pids()) == daemon.n:
                return
        time.sleep(0.05)
    raise RuntimeError(f"not all {daemon.n} running within {timeout:.0f} s: {daemon.log_tail()}")


def one_round(daemon: Eyried, note: Path, importtime: bool) -> tuple[float, float, list[str], list[str]]:
    """Launch → first spawn (s), CPU by then (s), the modules loaded, the importtime lines before it."""
    note.unlink(missing_ok=True)
    err = daemon.home.root / "round.err"
    env = {**daemon.env, "EYRIE_BENCH_FIRST_SPAWN": str(note)}
    if importtime:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    home = str(daemon.home.root)
    argv = [sys.executable, "-m", "bench._first_spawn", "--home", home, "--log-level", "warning"]
    with err.open("wb") as stderr:
        launched = time.monotonic()
        daemon.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env
        )
    try:
        wait_running(daemon)
    finally:
        daemon.stop_daemon()
    taken = json.loads(note.read_text())
    lines = err.read_text(errors="replace").split("first-spawn\n", 1)[0].splitlines()
    return taken["monotonic"] - launched, taken["cpu"], taken["modules"], lines


def instructions(daemon: Eyried) -> int:
    """Instructions from exec to the first spawn (the process ends there), by callgrind."""
    home = str(daemon.home.root)
    env = {**daemon.env, "EYRIE_BENCH_EXIT_AT_SPAWN": "1"}
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m"]
    argv += ["bench._first_spawn", "--home", home, "--log-level", "warning"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, check=False)
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"callgrind reported no count: {done.stderr[-2000:]}")


def by_package(lines: list[str]) -> collections.Counter[str]:
    """Self time (µs) of each importtime entry, summed by top-level package (``supervisor.x`` kept apart)."""
    spent: collections.Counter[str] = collections.Counter()
    for line in lines:
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        parts = name.strip().split(".")
        spent[".".join(parts[:2]) if parts[0] == "supervisor" else parts[0]] += int(own)
    return spent


def floor(code: str, runs: int) -> tuple[float, float]:
    """Median spawn → exit wall (ms) and the child's CPU (ms) of ``python -c code``."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        walls.append((time.perf_counter() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def memory_tables() -> None:
    """What each import adds to a fresh process: RSS after each step, then the traced heap by module."""
    run = [sys.executable, "-m", "bench._import_memory"]
    steps = json.loads(subprocess.run([*run, "rss"], capture_output=True, check=True, text=True).stdout)
    say("RSS after each import in a fresh process (VmRSS / RssAnon, MiB; the step's own in brackets)")
    previous = None
    for step in steps:
        added = f" (+{(step['VmRSS'] - previous) / 1024:.1f})" if previous is not None else ""
        print(f"  {step['VmRSS'] / 1024:6.1f} / {step['RssAnon'] / 1024:5.1f}{added}  {step['step']}")
        previous = step["VmRSS"]
    traced = json.loads(subprocess.run([*run, "traced"], capture_output=True, check=True, text=True).stdout)
    scale = {key: value for key, value in traced.items() if key.startswith("(")}
    heap = {key: value for key, value in traced.items() if not key.startswith("(")}
    ours = sum(value for key, value in heap.items() if key.startswith("supervisor"))
    total, own = sum(heap.values()) / 2**20, ours / 2**20
    say(f"Python heap after importing the daemon (tracemalloc): {total:.1f} MiB, eyrie's {own:.2f} MiB")
    for key, value in sorted(heap.items(), key=lambda item: -item[1])[:30]:
        print(f"  {value / 1024:8.0f} KiB  {key}")
    for key, value in scale.items():
        print(f"  {value / 1024:8.0f} KiB  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--modules", type=Path)
    parser.add_argument("--instructions", type=int, default=0, metavar="RUNS")
    parser.add_argument("--floor-runs", type=int, default=15)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    if args.memory:
        memory_tables()
        if not args.rounds:
            return
    with scratch_dir("eyrie-start-imports-") as tmp:
        daemon = Eyried(Path(tmp), args.size, own_env(f"start-imports-{os.getpid()}"))
        try:
            daemon.launch()
            wait_running(daemon)
            daemon.stop_daemon()
            walls, cpus, counts, spent = [], [], [], collections.Counter[str]()
            for _ in range(args.rounds):
                wall, cpu, modules, lines = one_round(daemon, Path(tmp) / "note.json", args.importtime)
                walls.append(wall * 1000)
                cpus.append(cpu * 1000)
                counts.append(len(modules))
                spent.update(by_package(lines))
                if args.modules:
                    args.modules.write_text("\n".join(modules) + "\n")
            counted = [instructions(daemon) for _ in range(args.instructions)]
        finally:
            daemon.close()
    say(
        f"N={args.size}, {args.rounds} rounds: launch → first spawn {statistics.median(walls):.0f} ms"
        f" (min {min(walls):.0f}), CPU by then {statistics.median(cpus):.0f} ms (min {min(cpus):.0f}),"
        f" {statistics.median(counts):.0f} modules loaded"
    )
    if counted:
        say(
            f"N={args.size}: {statistics.median(counted):,.0f} instructions from exec to the first spawn"
            f" (callgrind, median of {len(counted)}; {min(counted):,}–{max(counted):,})"
        )
    for name, micros in spent.most_common(25):
        print(f"  {micros / 1000 / args.rounds:7.1f} ms  {name}")
    for label, code in FLOORS.items() if args.floor_runs else ():
        wall, cpu = floor(code, args.floor_runs)
        say(f"floor {label}: {wall:.0f} ms wall, {cpu:.0f} ms CPU (median of {args.floor_runs})")


if __name__ == "__main__":
    main()
