"""Summarise the garbage-collection pauses that ``bench/_gc_probe`` recorded of each daemon process: per
generation, how many collections, their p50 / p95 / max and total ms of CPU (wall beside it), and the
collections over 1 ms of CPU.

    .venv/bin/python -m bench.gc_pauses /tmp/gc.jsonl [--after SECONDS | --between FROM TO]

``--after`` leaves out each process's first SECONDS (its start-up) so a steady state's pauses stand alone;
``--between`` keeps the collections that began between two ``time.monotonic()`` readings (the window a
benchmark prints).
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
    parser.add_argument("--after", type=float, default=0.0, help="seconds of each process to leave out")
    parser.add_argument("--between", type=float, nargs=2, metavar=("FROM", "TO"))
    args = parser.parse_args(argv)
    for line in Path(args.path).read_text().splitlines():
        record = json.loads(line)
        pauses = record["pauses"]
        if not pauses:
            continue
        first = pauses[0][2]
        low, high = args.between or (first + args.after, pauses[-1][2])
        kept = [p for p in pauses if low <= p[2] <= high]
        print(f"pid {record['pid']}: {len(kept)} collections over {high - low:.1f} s")
        for generation in (0, 1, 2):
            ms = [p[4] for p in kept if p[0] == generation]
            wall = [p[1] for p in kept if p[0] == generation]
            if ms:
                print(
                    f"    gen {generation}: {len(ms)}, CPU p50 {statistics.median(ms):.2f} ms, "
                    f"p95 {pct(ms, 0.95):.2f} ms, max {max(ms):.2f} ms, total {sum(ms):.0f} ms "
                    f"(wall p95 {pct(wall, 0.95):.2f}, max {max(wall):.2f} ms)"
                )
        slow = [p for p in kept if p[4] >= 1.0]
        print(f"    over 1 ms of CPU: {len(slow)}: " + ", ".join(f"gen {p[0]} {p[4]:.1f}" for p in slow[:30]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
