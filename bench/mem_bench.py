"""Memory benchmark: a real ``eyried`` with N sleeper instances, its memory read from ``/proc``.

Per N: a fresh daemon starts N sleepers, settles, and its ``/proc/<pid>/smaps_rollup`` (RSS, anonymous,
file-backed) is printed with the load average; then the fleet stops with the daemon. ``--trace`` runs one
daemon under tracemalloc instead, grows its fleet from the first size to the last by a reload, and prints
the allocations that grew in between, per instance, grouped by the traceback's innermost frames in
``supervisor`` (or anywhere with ``--all-frames``). Fleets take ports from 51000–52999
(``EYRIE_BENCH_PORTS=FIRST-LAST`` moves them).

    .venv/bin/python bench/mem_bench.py --sizes 50 200
    .venv/bin/python bench/mem_bench.py --trace --sizes 50 200
    .venv/bin/python bench/mem_bench.py --trace --structures --depth 10 --sizes 50 250
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from bench._scratch import scratch_dir
from bench.daemon_bench import Bench, fleet_text

_TRACER = """\
import sys, threading, time, tracemalloc
from pathlib import Path
tracemalloc.start(int(sys.argv.pop(1)))
trigger = Path(sys.argv.pop(1))
def watch():
    n = 0
    while True:
        ask = trigger.with_suffix(f".{n}")
        if ask.exists():
            snap = tracemalloc.take_snapshot()
            snap.dump(str(ask) + ".snap")
            ask.with_suffix(f".{n}.done").touch()
            n += 1
        time.sleep(0.2)
threading.Thread(target=watch, daemon=True).start()
from supervisor.daemon.main import main
main()
"""


STRUCTURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the listing's cached rows", ("daemon/views.py", "daemon/_view_cache.py")),
    (
        "records: store cache, engine memory, last written, its JSON",
        ("store.py", "engine/_record.py", "models.py"),
    ),
    ("fleet declaration and its resolution", ("fleet/",)),
    ("runtime (launch data and policies)", ("engine/runtime.py", "daemon/runtime.py")),
    ("confinement (policy, ruleset, calls)", ("sandbox/",)),
    ("events kept (hub, history)", ("control/hub.py", "control/_sse.py")),
    (
        "process handle, pidfd, spawn",
        ("engine/process.py", "engine/_launch.py", "engine/_posix_spawn.py", "engine/pidfd.py"),
    ),
    (
        "liveness pass, resource sampler",
        ("engine/_liveness_pass.py", "engine/resources.py", "engine/_usage.py"),
    ),
    (
        "actor tasks: task groups, cancel scopes, coroutines",
        (
            "engine/actor.py",
            "engine/_watch.py",
            "engine/_supervision.py",
            "engine/engine.py",
            "daemon/reconciler.py",
        ),
    ),
)
"""What holds an allocation, by the innermost ``supervisor`` module of its traceback that names one."""


def structure_of(filenames: list[str]) -> str:
    ours = [f.split("/supervisor/")[1] for f in filenames if "/supervisor/" in f]
    for module in reversed(ours):
        for name, prefixes in STRUCTURES:
            if module.startswith(prefixes):
                return name
    return f"other ({ours[-1] if ours else Path(filenames[-1]).name})"


def rollup(pid: int) -> dict[str, float]:
    """MiB per field of ``smaps_rollup``."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0]) / 1024
    return fields


def fleet(n: int) -> str:
    first, _, last = os.environ.get("EYRIE_BENCH_PORTS", "51000-52999").partition("-")
    return fleet_text(n).replace("first: 47000, last: 48999", f"first: {first}, last: {last}")


def say(text: str) -> None:
    print(f"{text}  [load {' '.join(f'{x:.2f}' for x in os.getloadavg())}]", flush=True)


async def rss_of(n: int, settle: float) -> None:
    with scratch_dir(prefix=f"eyrie-mem-{n}-") as tmp:
        bench = Bench(Path(tmp), n)
        (bench.home.root / "fleet.yaml").write_text(fleet(n))
        started = bench.start_daemon()
        try:
            await bench.wait_all_running(started)
            await anyio.sleep(settle)
            assert bench.proc is not None
            m = rollup(bench.proc.pid)
            say(
                f"N={n}: RSS {m['Rss']:.1f} MiB (anon {m['Anonymous']:.1f}, "
                f"file {m['Rss'] - m['Anonymous']:.1f}), CPU {bench.daemon_cpu():.2f} s"
            )
        finally:
            bench.stop_daemon()


async def traced(
    sizes: list[int], depth: int, settle: float, all_frames: bool, keep: str, structures: bool
) -> None:
    import tracemalloc

    first, last = sizes[0], sizes[-1]
    with scratch_dir(prefix="eyrie-memtrace-") as tmp:
        bench = Bench(Path(tmp), first)
        (bench.home.root / "fleet.yaml").write_text(fleet(first))
        trigger = Path(tmp) / "snap"
        env = {**os.environ, "EYRIE_HOME": str(bench.home.root)}
        env.pop("NOTIFY_SOCKET", None)
        started = time.perf_counter()
        bench.proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", _TRACER, str(depth), str(trigger), "--home", str(bench.home.root)],
            stdout=subprocess.DEVNULL,
            stderr=open(bench.home.root / "eyried.err", "ab"),  # noqa: SIM115, ASYNC230
            env=env,
        )
        try:
            await bench.wait_all_running(started)
            snaps = []
            for i, n in enumerate((first, last)):
                if i:
                    (bench.home.root / "fleet.yaml").write_text(fleet(n))
                    bench.n = n
                    bench.proc.send_signal(signal.SIGHUP)
                    with anyio.fail_after(600):  # a listing during the reload is slow under tracemalloc
                        while b"reload_applied" not in (bench.home.root / "eyried.err").read_bytes():  # noqa: ASYNC110
                            await anyio.sleep(0.5)
                    await bench.wait_all_running(time.perf_counter())
                await anyio.sleep(settle)
                trigger.with_suffix(f".{i}").touch()
                with anyio.fail_after(120):
                    while not trigger.with_suffix(f".{i}.done").exists():  # noqa: ASYNC110
                        await anyio.sleep(0.2)
                snaps.append(tracemalloc.Snapshot.load(str(trigger.with_suffix(f".{i}")) + ".snap"))
                if keep:
                    snaps[-1].dump(f"{keep}.{i}")
                say(f"N={n}: RSS {rollup(bench.proc.pid)['Rss']:.1f} MiB (tracemalloc on)")
        finally:
            bench.stop_daemon()
    report(snaps[0], snaps[1], last - first, all_frames, structures)


def report(before: object, after: object, grown: int, all_frames: bool, structures: bool) -> None:
    import tracemalloc

    assert isinstance(before, tracemalloc.Snapshot) and isinstance(after, tracemalloc.Snapshot)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(keep), after.filter_traces(keep)
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"grown by {grown} instances: {total / 1024:.0f} KiB, {total / grown / 1024:.2f} KiB each")

    def where(tb: tracemalloc.Traceback) -> str:
        ours = [f for f in tb if all_frames or "/supervisor/" in f.filename][-3:]
        innermost = list(tb)[-1:]
        frames = ours + [f for f in innermost if f not in ours]
        return " > ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames)

    grouped: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        key = structure_of([f.filename for f in stat.traceback]) if structures else where(stat.traceback)
        grouped[key] = grouped.get(key, 0) + stat.size_diff
    for key, size in sorted(grouped.items(), key=lambda kv: -kv[1])[:40]:
        print(f"  {size / grown:8.0f} B/instance  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after all are running")
    parser.add_argument("--trace", action="store_true", help="allocations grown between the sizes")
    parser.add_argument("--depth", type=int, default=25, help="traceback depth under --trace")
    parser.add_argument("--keep", default="", help="--trace: dump the snapshots to KEEP.0/.1")
    parser.add_argument("--all-frames", action="store_true", help="group by any frames")
    parser.add_argument("--structures", action="store_true", help="--trace: group by what holds them")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a killed bench still stops its daemon
    if args.trace:
        anyio.run(traced, args.sizes, args.depth, args.settle, args.all_frames, args.keep, args.structures)
        return
    for n in args.sizes:
        anyio.run(rss_of, n, args.settle)


if __name__ == "__main__":
    main()
