"""Sandbox benchmark: what confinement adds to one spawn, measured in this process.

Times ``spawn()`` (fork, the child's set-up, exec; returns once the child is identified) of ``true``
unconfined and confined with a cached ruleset, interleaved so that load hits both alike, and the first
build of a ruleset (paths opened, prefixes resolved, rules added), which happens once per policy.

    .venv/bin/python bench/sandbox_bench.py --samples 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench._scratch import scratch_dir
from supervisor.engine.process import spawn
from supervisor.sandbox.confine import Sandboxes
from supervisor.sandbox.policy import SandboxPolicy


def _quiet(event: str, **fields: object) -> None:
    del event, fields


def policy(home: Path) -> SandboxPolicy:
    instance = home / "instances" / "bench"
    (instance / "secrets").mkdir(parents=True, exist_ok=True)
    (instance / "secrets" / "token").write_text("t")
    (instance / "config.json").write_text("{}")
    return SandboxPolicy(
        instance_dir=str(instance),
        workspace=str(instance / "workspace"),
        config=str(instance / "config.json"),
        token=str(instance / "secrets" / "token"),
        port=43999,
        argv=(sys.executable, "-m", "supervisor.testing.faulty_agent"),
        search_path=os.environ.get("PATH", os.defpath),
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with scratch_dir(prefix="eyrie-sandbox-bench-") as tmp:
        home = Path(tmp)
        the_policy = policy(home)
        builds = []
        for i in range(20):
            boxes = Sandboxes()
            started = time.perf_counter()
            boxes.prepare(f"b{i}", the_policy, _quiet)
            builds.append((time.perf_counter() - started) * 1000)
            boxes.close()
        boxes = Sandboxes()
        confiner = boxes.prepare("bench", the_policy, _quiet).confiner
        times: dict[str, list[float]] = {"unconfined": [], "confined": []}
        log = home / "spawn.log"
        workspace = Path(the_policy.workspace)
        for _ in range(args.samples):
            for label, confine in (("unconfined", None), ("confined", confiner)):
                started = time.perf_counter()
                proc = spawn(("true",), env=dict(os.environ), cwd=workspace, log_path=log, confine=confine)
                times[label].append((time.perf_counter() - started) * 1000)
                os.waitpid(proc.pid, 0)
                proc.release()
        boxes.close()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, Landlock ABI {boxes.abi}")
    print(f"ruleset build (first spawn of a policy): p50 {statistics.median(builds):.2f} ms")
    for label, values in times.items():
        print(f"spawn {label:>10}: p50 {statistics.median(values):.2f} ms, p95 {pct(values, 0.95):.2f} ms")


if __name__ == "__main__":
    main()
