"""Fleet-file benchmark: what a reload pays to read the file, and what one ``eyriectl`` edit pays.

Per N: ``parse_fleet`` of a commented file of N instances (YAML load, schema, resolution, hierarchy) —
the work of every reload — and, at the largest N, one ``add`` and one ``enable`` (``set_autostart`` of a
disabled instance), each with its lock, validation and atomic write, and the same ``enable`` done as a
whole-file round-trip rewrite instead of a line edit. Medians of ``--repeat`` runs, wall clock and CPU;
each edit also counts the lines it changed, so an edit that rewrote more than its target shows.

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
from supervisor.fleet._yaml import dump_rt, rt_load

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


class Timer:
    """Wall-clock and CPU milliseconds of repeated runs; CPU time moves less with the machine's load."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def run(self, work: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        self.cpu.append((time.process_time() - cpu) * 1000)
        self.wall.append((time.perf_counter() - wall) * 1000)

    def __str__(self) -> str:
        return f"{statistics.median(self.wall):.1f} ms ({statistics.median(self.cpu):.1f} ms CPU)"


def changed_lines(before: str, after: str) -> int:
    """Lines removed or added between two texts: what an edit touched."""
    diff = difflib.ndiff(before.splitlines(), after.splitlines())
    return sum(1 for line in diff if line[:2] in ("- ", "+ "))


def time_edit(text: str, edit: Callable[[Path], None], repeat: int) -> tuple[Timer, int]:
    """Times of ``edit`` on a fresh copy of ``text``, and how many lines it changed."""
    timer = Timer()
    touched = 0
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "fleet.yaml"
        for _ in range(repeat):
            file.write_text(text, encoding="utf-8")
            os.chmod(file, 0o600)
            timer.run(partial(edit, file))
            touched = changed_lines(text, file.read_text(encoding="utf-8"))
    return timer, touched


def round_trip_enable(file: Path) -> None:
    """The alternative to line edits: load the whole file round-trip, set the key, dump it in the file's own
    indentation (no lock, no validation: a lower bound)."""
    tree = rt_load(file.read_text(encoding="utf-8"))
    tree["instances"][3]["autostart"] = True
    file.write_text(dump_rt(tree, mapping=2, sequence=4, offset=2), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {args.repeat} runs per figure (median)")
    for n in args.sizes:
        text = fleet_text(n)
        parse_fleet(text)  # warm: imports, framework definitions
        timer = Timer()
        for _ in range(args.repeat):
            timer.run(partial(parse_fleet, text))
        print(f"N={n}: parse_fleet {timer}")
    n = max(args.sizes)
    text = fleet_text(n)
    new = InstanceDecl(name="newcomer", persona="generalist", env={"A": "1"})
    add, add_lines = time_edit(text, lambda f: add_instance(f, new), args.repeat)
    enable, enable_lines = time_edit(text, lambda f: set_autostart(f, "agent-0003", True), args.repeat)
    print(f"N={n}: add {add}, {add_lines} lines changed")
    print(f"N={n}: enable {enable}, {enable_lines} lines changed")
    whole, whole_lines = time_edit(text, round_trip_enable, args.repeat)
    print(f"N={n}: enable as a round-trip rewrite {whole}, {whole_lines} lines changed")


if __name__ == "__main__":
    main()
