"""Resource sampler benchmark: what sampling N instance trees costs the daemon's CPU.

Starts N process trees (``sleep infinity`` alone, or with ``--helpers`` a ``sh`` with one ``sleep`` child:
two processes an instance, like an agent with a helper), then runs the engine's `ResourceSampler` over them
on an event loop for ``--seconds`` with a ``--interval`` liveness interval, and prints the CPU the loop used
per sampling pass and as a percentage of one core at the default 10 s interval; an idle event loop over the
same window is measured first, so the figure is the sampler's own cost. ``--reads`` also times the /proc
reads alone (no event loop, no thread).

    .venv/bin/python bench/sampler_bench.py --sizes 50 200 500 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import structlog

from supervisor.engine.resources import LimitWatch, ResourceSampler, Sampled
from supervisor.engine.states import Phase
from supervisor.models import Instance
from supervisor.policies import HealthPolicy, MemoryPolicy

DEFAULT_INTERVAL = 10.0


@dataclass
class _Runtime:
    instance_id: str
    health: HealthPolicy
    memory: MemoryPolicy = field(default_factory=MemoryPolicy)


@dataclass
class _Proc:
    pid: int
    start_ticks: int


@dataclass
class _Actor:
    """Just what the sampler reads of an actor."""

    runtime: _Runtime
    proc: _Proc
    phase: Phase = Phase.RUNNING
    services: Any = None
    limits: LimitWatch = field(default_factory=LimitWatch)
    inst: Instance = field(default_factory=Instance)
    log: Any = field(default_factory=structlog.get_logger)


def _start_ticks(pid: int) -> int:
    raw = open(f"/proc/{pid}/stat", "rb").read()  # noqa: SIM115
    return int(raw[raw.rindex(b")") + 2 :].split()[19])


def spawn_trees(n: int, helpers: bool) -> list[subprocess.Popen[bytes]]:
    argv = ["sh", "-c", "sleep infinity & wait"] if helpers else ["sleep", "infinity"]
    return [subprocess.Popen(argv, start_new_session=True) for _ in range(n)]


async def _idle(seconds: float) -> float:
    before = time.process_time()
    await anyio.sleep(seconds)
    return time.process_time() - before


async def _sampled(actors: list[_Actor], seconds: float, per_tree: int) -> tuple[float, int]:
    sampler = ResourceSampler(lambda: cast("list[Sampled]", actors))
    limiter = anyio.CapacityLimiter(8)
    before = time.process_time()
    with anyio.move_on_after(seconds):
        await sampler.run(limiter)
    used = time.process_time() - before
    processes = sum(len(s.processes) for s in sampler.samples.values())
    assert processes == per_tree * len(actors), f"found {processes} processes in {len(actors)} trees"
    return used, sampler.passes


def bench(n: int, seconds: float, interval: float, reads: bool, helpers: bool) -> None:
    procs = spawn_trees(n, helpers)
    try:
        time.sleep(0.5)  # every sh has forked its sleep
        health = HealthPolicy(interval=interval)
        actors = [
            _Actor(_Runtime(f"i{i}", health), _Proc(p.pid, _start_ticks(p.pid))) for i, p in enumerate(procs)
        ]
        idle = anyio.run(_idle, seconds)
        used, passes = anyio.run(_sampled, actors, seconds, 2 if helpers else 1)
        per_pass = max(used - idle, 0.0) / max(passes, 1)
        share = per_pass / DEFAULT_INTERVAL * 100
        print(
            f"N={n}, {2 if helpers else 1} process(es) each: {passes} passes in {seconds:g}s, "
            f"{per_pass * 1000:.2f} ms CPU per pass "
            f"(idle loop {idle * 1000:.1f} ms over the window) → {share:.4f} % of one core at a "
            f"{DEFAULT_INTERVAL:g}s liveness interval"
        )
        if reads:
            from supervisor.engine.resources import _read_trees

            keys = [(a.proc.pid, a.proc.start_ticks, True) for a in actors]
            times = []
            for _ in range(20):
                before = time.process_time()
                _read_trees(keys)
                times.append(time.process_time() - before)
            print(
                f"  /proc reads alone, children included: {statistics.median(times) * 1000:.2f} ms per pass"
            )
    finally:
        for p in procs:
            os.killpg(p.pid, 9)
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0, help="liveness interval while measuring")
    parser.add_argument("--reads", action="store_true", help="also time the /proc reads alone")
    parser.add_argument("--helpers", action="store_true", help="two processes per instance, not one")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    for n in args.sizes:
        bench(n, args.seconds, args.interval, args.reads, args.helpers)


if __name__ == "__main__":
    main()
