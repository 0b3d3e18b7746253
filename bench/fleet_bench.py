"""Fleet-file benchmark: what a reload pays to read the file, and what one ``eyriectl`` edit pays.

Per N: ``parse_fleet`` of a commented file of N instances (YAML load, schema, resolution, hierarchy) —
the work of every reload — and, at the largest N, one ``add`` and one ``enable`` (``set_autostart`` of a
disabled instance) on a file of N instances, each with its lock, validation and atomic write. Medians of
``--repeat`` runs; each edit also checks that the lines it did not target came through byte for byte.

    .venv/bin/python bench/fleet_bench.py --sizes 200 500 --repeat 15
"""

from __future__ import annotations

import argparse
import difflib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from supervisor.fleet import InstanceDecl, add_instance, parse_fleet, set_autostart

HEADER = """\
# A generated fleet for the benchmark: comments, flow-style policies and a few overrides, as people write.

version: 1   # this release reads version 1

defaults:
  # restart policy for every agent
  restart: {policy: on-failure, initial_delay: 1s, factor: 2, max_delay: 60s, jitter: 0.1,
            reset_after: 60s, max_retries: 10, cooldown: 10m}
  health: {interval: 10s, timeout: 3s, failure_threshold: 3, start_timeout: 60s}

instances:
"""


def fleet_text(n: int) -> str:
    """N standalone instances; every tenth has its own env and restart keys, every seventh is disabled."""
    parts = [HEADER]
    for i in range(n):
        parts.append(f"  # --- agent {i}\n  - name: agent-{i:04d}\n    framework: embedded\n")
        parts.append(f"    persona: generalist    # what it is for\n    model: model-{i % 5}\n")
        if i % 10 == 0:
            parts.append(f"    env: {{LOG_LEVEL: debug, SHARD: '{i}'}}\n    restart: {{max_retries: 3}}\n")
        if i % 7 == 3:
            parts.append("    autostart: false\n")
        parts.append("\n")
    return "".join(parts)


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def changed_lines(before: str, after: str) -> int:
    """Lines removed or added between two texts: what an edit touched."""
    diff = difflib.ndiff(before.splitlines(), after.splitlines())
    return sum(1 for line in diff if line[:2] in ("- ", "+ "))


def edit_ms(text: str, edit: Callable[[Path], None], repeat: int) -> tuple[float, int]:
    """Median time of ``edit`` on a fresh copy of ``text``, and how many lines it changed."""
    times = []
    touched = 0
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "fleet.yaml"
        for _ in range(repeat):
            file.write_text(text, encoding="utf-8")
            os.chmod(file, 0o600)
            start = time.perf_counter()
            edit(file)
            times.append((time.perf_counter() - start) * 1000)
            touched = changed_lines(text, file.read_text(encoding="utf-8"))
    return statistics.median(times), touched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {args.repeat} runs per figure (median)")
    for n in args.sizes:
        text = fleet_text(n)
        parse_fleet(text)  # warm: imports, framework definitions
        print(f"N={n}: parse_fleet {median_ms(partial(parse_fleet, text), args.repeat):.1f} ms")
    n = max(args.sizes)
    text = fleet_text(n)
    new = InstanceDecl(name="newcomer", persona="generalist", env={"A": "1"})
    add, add_lines = edit_ms(text, lambda f: add_instance(f, new), args.repeat)
    enable, enable_lines = edit_ms(text, lambda f: set_autostart(f, "agent-0003", True), args.repeat)
    print(f"N={n}: add {add:.1f} ms ({add_lines} lines changed)")
    print(f"N={n}: enable {enable:.1f} ms ({enable_lines} lines changed)")


if __name__ == "__main__":
    main()
