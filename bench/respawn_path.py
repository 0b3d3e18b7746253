"""Summarise what ``bench/_respawn_probe`` stamped inside each daemon: from a process's end (its pidfd
readable) to the ``posix_spawn`` call of its replacement, the event-loop thread's CPU and the wall time;
the spawn call itself (clone → the child's exec, which a vfork parent waits for); how many of those windows
held a garbage collection; and, when it was recorded, the profile of those windows.

    .venv/bin/python -m bench.respawn_path /tmp/rp.jsonl [--skip 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench._compare.measure import pct

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path")
    parser.add_argument("--skip", type=int, default=0, help="leave out each daemon's first SKIP respawns")
    args = parser.parse_args(argv)
    for line in Path(args.path).read_text().splitlines():
        record = json.loads(line)
        samples = record["samples"][args.skip :]
        if not samples:
            continue
        print(f"pid {record['pid']}: {len(samples)} respawns, {record['fds']} descriptors open at exit")
        for key, label in (
            ("to_spawn_cpu_ms", "pidfd readable → spawn call, loop thread CPU"),
            ("to_spawn_wall_ms", "pidfd readable → spawn call, wall"),
            ("spawn_cpu_ms", "the spawn call, CPU"),
            ("spawn_wall_ms", "the spawn call, wall"),
            ("clone_cpu_ms", "  in it, the C library's posix_spawn (clone → exec), CPU"),
            ("clone_wall_ms", "  in it, the C library's posix_spawn (clone → exec), wall"),
        ):
            values = [s[key] for s in samples]
            print(
                f"    {label}: p50 {statistics.median(values):.3f} ms, p95 {pct(values, 0.95):.3f} ms, "
                f"max {max(values):.3f} ms"
            )
        with_gc = [s for s in samples if s["collections"]]
        gc_cpu = [s["to_spawn_cpu_ms"] for s in with_gc]
        print(
            f"    windows holding a collection: {len(with_gc)} of {len(samples)}"
            + (f" (their CPU p50 {statistics.median(gc_cpu):.3f} ms)" if gc_cpu else "")
        )
        if "profile" in record:
            print(record["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
