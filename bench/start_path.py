"""Where a start of ``eyried`` goes between its imports and its last agent spawn: launch → the N-th spawn.

One home of N ``sleep infinity`` instances (``sandbox: off``), per size. ``--first R`` times R first starts
(each on a fresh home, provisioning all N), then ``--rounds`` provisioned starts run on the last of them. Each
daemon runs under `bench._last_spawn`, which notes the moment and the process's CPU when its imports were
done, at its first spawn and at its N-th, and each thread's CPU by then. Printed per size, as medians over the
rounds: launch → first and → N-th spawn (wall), the CPU from the imports' end to the N-th spawn (all threads,
and the main thread's part), that CPU per instance, and the turns of the event loop to the first spawn and
from there to the N-th (which the load does not move). ``--instructions RUNS`` adds what callgrind counts
(all threads) from exec to the first spawn in RUNS provisioned starts that end there (under valgrind a
``vfork`` is a ``fork``: the spawns after it cannot be counted). ``--profile FILE`` writes the main
thread's cProfile stats from ``main`` to the N-th spawn of one more provisioned start (read them with ``python
-m pstats FILE``); ``--phases`` times the calls of another (`bench._last_spawn.PHASES`: fleet read, store
scan, port checks, spawns, state writes …).

``--tree DIR`` runs the daemon from another checkout (its ``supervisor`` package first on ``PYTHONPATH``):
the bench's own code stays this one's, so two trees are measured by one method, back to back. Every daemon is
stopped (SIGTERM: its fleet stopped, its claims released) in a ``finally``; the homes are removed with their
port claims. Ports from ``EYRIE_BENCH_PORTS`` (default 45000–46999). Byte-compile both trees first
(``python -m compileall -q supervisor bench``).

    .venv/bin/python -m bench.start_path --sizes 200 1000 --rounds 5 --first 3 --instructions 1
    .venv/bin/python -m bench.start_path --sizes 200 --tree ../base --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._compare.eyried import Eyried, own_env
from bench._scratch import scratch_dir
from bench.start_imports import wait_running

WRAPPER = str(Path(__file__).with_name("_last_spawn.py"))


def say(text: str) -> None:
    print(f"{text}  [load {' '.join(f'{x:.2f}' for x in os.getloadavg())}]", flush=True)


def argv(daemon: Eyried) -> list[str]:
    """The daemon under the wrapper, run by path with ``-P``: nothing but ``PYTHONPATH`` picks the tree."""
    home = str(daemon.home.root)
    return [sys.executable, "-P", WRAPPER, "--home", home, "--log-level", "warning"]


def one_start(daemon: Eyried, note: Path, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Launch the daemon on its home as it is, wait until all N run, stop it: the wrapper's note."""
    note.unlink(missing_ok=True)
    env = {**daemon.env, "EYRIE_BENCH_LAST_SPAWN": f"{note}:{daemon.n}", **(extra or {})}
    with (daemon.home.root / "eyried.err").open("ab") as err:
        launched = time.monotonic()
        daemon.proc = subprocess.Popen(
            argv(daemon), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env
        )
    try:
        wait_running(daemon)
    finally:
        daemon.stop_daemon()
    taken: dict[str, Any] = json.loads(note.read_text())
    taken["launched"] = launched
    return taken


def figures(note: dict[str, Any], n: int) -> dict[str, float]:
    imported, first, last = note["imported"], note["first"], note["last"]
    main = note["threads"].pop("main")
    return {
        "first_ms": (first["monotonic"] - note["launched"]) * 1000,
        "last_ms": (last["monotonic"] - note["launched"]) * 1000,
        "imports_cpu_ms": imported["cpu"] * 1000,
        "work_cpu_ms": (last["cpu"] - imported["cpu"]) * 1000,
        "before_first_cpu_ms": (first["cpu"] - imported["cpu"]) * 1000,
        "main_cpu_ms": main * 1000,
        "workers_cpu_ms": sum(note["threads"].values()) * 1000,
        "per_instance_ms": (last["cpu"] - imported["cpu"]) * 1000 / n,
        "turns_first": first["turns"] - imported["turns"],
        "turns_between": last["turns"] - first["turns"],
    }


def summary(label: str, n: int, rounds: list[dict[str, float]]) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    walls = [r["last_ms"] for r in rounds]
    say(
        f"N={n} {label}, {len(rounds)} rounds: launch → first spawn {med('first_ms'):.0f} ms,"
        f" → N-th spawn {med('last_ms'):.0f} ms ({min(walls):.0f}–{max(walls):.0f});"
        f" CPU: imports {med('imports_cpu_ms'):.0f} ms, then to the N-th spawn {med('work_cpu_ms'):.0f} ms"
        f" ({med('per_instance_ms'):.2f} ms per instance;"
        f" {med('before_first_cpu_ms'):.0f} ms of it before the first spawn);"
        f" by the N-th spawn the main thread {med('main_cpu_ms'):.0f} ms,"
        f" the others {med('workers_cpu_ms'):.0f} ms (ticks of 10 ms); event-loop turns to the first spawn"
        f" {med('turns_first'):.0f}, from there to the N-th {med('turns_between'):.0f}"
    )


def phases(note: dict[str, Any], n: int) -> None:
    """One more provisioned start's timed calls: how many, the first's start and the last's end (ms from the
    launch), their wall time and their thread's CPU summed (nested calls are in their callers' too)."""
    say(f"N={n} provisioned start, timed calls: count, first start → last end (ms from launch), wall, CPU")
    launched = note["launched"]
    rows = []
    for name, spans in note.get("phases", {}).items():
        if not spans:
            continue
        begin = min(s[0] for s in spans) - launched
        end = max(s[2] for s in spans) - launched
        wall = sum(s[2] - s[0] for s in spans)
        cpu = sum(s[3] - s[1] for s in spans)
        rows.append(
            (
                begin,
                f"  {len(spans):5d}  {begin * 1000:7.1f} → {end * 1000:7.1f}  {wall * 1000:8.1f}"
                f"  {cpu * 1000:7.1f}  {name}",
            )
        )
    for _, line in sorted(rows):
        print(line)
    for key in ("imported", "first", "last"):
        print(f"  {key}: {(note[key]['monotonic'] - launched) * 1000:.1f} ms")


def instructions(daemon: Eyried, scratch: Path) -> int:
    """Instructions from exec to the first spawn, all threads (callgrind; the process ends there: valgrind
    runs a ``vfork`` as a ``fork``, and its children would not be the ones the daemon watches)."""
    out = scratch / "callgrind.out"
    env = {**daemon.env, "EYRIE_BENCH_LAST_SPAWN": f"{scratch / 'unused.json'}:1"}
    env["EYRIE_BENCH_EXIT_AT_SPAWN"] = "1"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv(daemon)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=False)
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            out.unlink(missing_ok=True)
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"callgrind reported no count: {done.stderr[-2000:]}")


def run_size(args: argparse.Namespace, n: int, env: dict[str, str]) -> None:
    with scratch_dir("eyrie-start-path-") as tmp:
        root = Path(tmp)
        daemon: Eyried | None = None
        try:
            firsts = []
            for i in range(max(args.first, 1)):
                if daemon is not None:
                    shutil.rmtree(daemon.home.root.parent)
                daemon = Eyried(root / f"home-{i}", n, env)
                firsts.append(figures(one_start(daemon, root / "note.json"), n))
            if args.first:
                summary("first start (provisioning all N)", n, firsts)
            assert daemon is not None
            provisioned = [figures(one_start(daemon, root / "note.json"), n) for _ in range(args.rounds)]
            if provisioned:
                summary("provisioned start", n, provisioned)
            counted = [instructions(daemon, root) for _ in range(args.instructions)]
            if counted:
                say(
                    f"N={n} provisioned start: {statistics.median(counted):,.0f} instructions exec → first"
                    f" spawn (callgrind, median of {len(counted)}: {min(counted):,}–{max(counted):,})"
                )
            if args.phases:
                phases(one_start(daemon, root / "note.json", {"EYRIE_BENCH_PHASES": "1"}), n)
            if args.profile:
                one_start(daemon, root / "note.json", {"EYRIE_BENCH_PROFILE": str(args.profile)})
                say(f"N={n}: the main thread's profile to the N-th spawn is in {args.profile}")
        finally:
            if daemon is not None:
                daemon.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--first", type=int, default=0, metavar="ROUNDS")
    parser.add_argument("--instructions", type=int, default=0, metavar="RUNS")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--phases", action="store_true", help="one more start with its calls timed")
    parser.add_argument("--tree", type=Path, help="the checkout whose supervisor package the daemon runs")
    args = parser.parse_args()
    env = own_env(f"start-path-{os.getpid()}")
    if args.tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.tree.resolve()), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    say(f"tree {args.tree or 'this one'}: PYTHONPATH={env.get('PYTHONPATH', '')}")
    for n in args.sizes:
        run_size(args, n, env)


if __name__ == "__main__":
    main()
