"""The per-instance memory floor: what any supervisor on these libraries holds for each instance, measured
the way ``mem_bench.py --trace --structures`` measures eyried (tracemalloc, the growth between two fleet
sizes, per instance), or by RSS (``smaps_rollup``) with ``--rss``.

Each part is the least of its kind: one anyio task per instance (in a task group, waiting on a bare future
inside one cancel scope: a watched process's actor must be interruptible), the record as parsed from the
``instance.json`` this release writes (one object), the declaration as the fleet file's loader validates
it (one `InstanceDecl`), and the process watched by a pidfd registered with the event loop. A plain
asyncio task and an anyio task without the scope are printed beside them. What eyried holds beyond the
floor (a record in memory beside the one last written, the ``ps`` row, the runtime, the actor's
coroutines) is what ``mem_bench.py --structures`` lists. Each part runs in a fresh process that has made
the daemon's imports first.

    .venv/bin/python bench/mem_floor.py --sizes 50 250
    .venv/bin/python bench/mem_floor.py --sizes 200 1000 --rss
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTS = ("asyncio task", "anyio task", "anyio task in a cancel scope", "record", "declaration", "pidfd watch")
FLOOR = PARTS[2:]
"""The parts every instance needs; the two plain tasks are printed for comparison."""


def _record_json(i: int) -> bytes:
    """An ``instance.json`` of a running sleeper as this release writes it (distinct per instance)."""
    from supervisor.models import Instance

    uid = f"3f1c2a4e-{i:04x}-4000-8000-{i:012x}"
    home = "/var/tmp/eyrie-floor/instances/" + uid
    inst = Instance.model_validate(
        {
            "id": uid,
            "name": f"sleeper-{i:04d}",
            "display_name": f"Sleeper {i:04d}",
            "framework": "embedded",
            "port": 53000 + i,
            "config_path": f"{home}/config.json",
            "workspace_path": f"{home}/workspace",
            "status": "running",
            "status_updated_at": "2026-12-01T05:00:00.123456Z",
            "pid": 100000 + i,
            "pgid": 100000 + i,
            "last_seen": "2026-12-01T05:00:10.123456Z",
            "health_status": "healthy",
            "created_at": "2026-12-01T04:59:00.123456Z",
            "schema_version": 5,
            "desired": "running",
            "desired_boot_id": "0f6f1b1e-2c57-4bd8-9d4e-6a1b8f3e9c20",
            "status_detail": f"process {100000 + i} started",
            "phase": "running",
            "started_at": "2026-12-01T05:00:00.023456Z",
            "proc_start_time": 7351234.56,
            "boot_id": "0f6f1b1e-2c57-4bd8-9d4e-6a1b8f3e9c20",
            "cmdline": ["sleep", "infinity"],
            "config_hash": "9" * 64,
            "launch_hash": "a" * 64,
            "sandbox": "off",
        }
    )
    return json.dumps(inst.to_json_dict()).encode()


def _build(part: str, n: int, keep: list[Any]) -> None:
    """Make ``n`` more of ``part`` (not a task), held in ``keep``."""
    if part == "record":
        from supervisor.models import Instance

        raws = [_record_json(i) for i in range(n)]
        keep += [Instance.model_validate_json(raw) for raw in raws]
    elif part == "declaration":
        from supervisor.fleet.sections import InstanceDecl

        keep += [InstanceDecl.model_validate({"name": f"sleeper-{i:04d}"}) for i in range(n)]
    elif part == "pidfd watch":
        import asyncio
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 1024)), hard))

        loop = asyncio.get_event_loop_policy().get_event_loop()
        for _ in range(n):
            fd = os.pidfd_open(os.getpid())
            loop.add_reader(fd, keep.append, None)
            keep.append(fd)


async def _tasks(part: str, sizes: list[int], measure: Callable[[int], None]) -> None:
    import asyncio

    import anyio

    async def bare(future: asyncio.Future[None]) -> None:
        await future

    async def scoped(future: asyncio.Future[None]) -> None:
        with anyio.CancelScope():
            await future

    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []
    tasks: list[asyncio.Task[None]] = []
    async with anyio.create_task_group() as tg:
        made = 0
        for n in sizes:
            for _ in range(n - made):
                future = loop.create_future()
                futures.append(future)
                if part == "asyncio task":
                    tasks.append(loop.create_task(bare(future)))
                else:
                    tg.start_soon(scoped if part.endswith("scope") else bare, future)
            made = n
            await anyio.sleep(0.05)
            measure(n)
        for future in futures:
            future.set_result(None)
    await asyncio.gather(*tasks)


def _child(part: str, sizes: list[int], rss: bool) -> None:
    """In a fresh process: the daemon's imports, then the part at each size; prints one JSON line per size."""
    import gc
    import tracemalloc

    import supervisor.daemon.main  # noqa: F401  the daemon's own imports, so that none is counted as growth

    def measure(n: int) -> None:
        gc.collect()
        heap = 0 if rss else tracemalloc.get_traced_memory()[0]
        print(json.dumps({"n": n, "heap": heap, "rss": _rss_kib(os.getpid()) * 1024}), flush=True)

    if not rss:
        tracemalloc.start(1)
    if part.endswith(("task", "scope")):
        import anyio

        anyio.run(_tasks, part, sizes, measure)
        return
    keep: list[Any] = []
    for made, n in zip([0, *sizes], sizes, strict=False):
        _build(part, n - made, keep)
        measure(n)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1])
    raise RuntimeError("no Rss in smaps_rollup")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs=2, default=[50, 250], metavar=("FROM", "TO"))
    parser.add_argument("--rss", action="store_true", help="RSS growth instead of tracemalloc's heap")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.sizes, args.rss)
        return
    low, high = args.sizes
    what = "RSS" if args.rss else "heap"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"per-instance floor, {what} growth from N={low} to N={high}  [load {load}]")
    total = 0.0
    for part in PARTS:
        cmd = [sys.executable, __file__, "--child", part, "--sizes", str(low), str(high)]
        if args.rss:
            cmd.append("--rss")
        lines = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
        first, last = (json.loads(line) for line in lines.splitlines()[-2:])
        key = "rss" if args.rss else "heap"
        each = (last[key] - first[key]) / (high - low)
        total += each if part in FLOOR else 0
        print(f"  {each:8.0f} B/instance  {part}")
    print(f"  {total:8.0f} B/instance  floor: {' + '.join(FLOOR)}")


if __name__ == "__main__":
    main()
