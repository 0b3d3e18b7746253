"""CPU of the ``ps`` rows a listing keeps (`supervisor.daemon._view_cache`), in process, without a daemon: N
instance records as the engine keeps them (`InstanceRecord`), their rows through one `ViewCache` as ``GET
/v1/instances`` asks for them, in three cases: nothing changed (only the uptimes), every instance seen by
a probe and sampled since the last listing (what every liveness interval brings), and every instance
written anew. Best CPU time of several rounds, with the load average. Run it against another checkout with
``PYTHONPATH=<checkout>`` to compare.

    .venv/bin/python bench/rows_bench.py --size 1000
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from supervisor.daemon._view_cache import ViewCache
from supervisor.engine._record import InstanceRecord
from supervisor.engine._usage import Usage
from supervisor.engine.resources import ResourceSample
from supervisor.fleet.sections import InstanceDecl
from supervisor.models import Instance, utcnow

if TYPE_CHECKING:
    from supervisor.engine._services import Services


def _records(n: int) -> list[InstanceRecord]:
    now = utcnow()
    records = []
    for i in range(n):
        inst = Instance.model_validate(
            {
                "id": f"3f1c2a4e-{i:04x}-4000-8000-{i:012x}",
                "name": f"sleeper-{i:04d}",
                "framework": "embedded",
                "port": 53000 + i,
                "config_path": f"/home/instances/{i}/config.json",
                "workspace_path": f"/home/instances/{i}/workspace",
                "status": "running",
                "status_detail": "process started",
                "pid": 100000 + i,
                "pgid": 100000 + i,
                "started_at": now - timedelta(seconds=60),
                "last_seen": now,
                "health_status": "healthy",
                "desired": "running",
                "phase": "running",
                "cmdline": ["sleep", "infinity"],
                "boot_id": "0f6f1b1e-2c57-4bd8-9d4e-6a1b8f3e9c20",
                "config_hash": "9" * 64,
                "launch_hash": "a" * 64,
                "sandbox": "off",
            }
        )
        records.append(InstanceRecord(inst, inst.id, cast("Services", None), None))
    return records


def _sample(ticks: int) -> ResourceSample:
    return ResourceSample(
        tree=[Usage(1, 1, 1, ticks, 1 << 20, 1)], before=[Usage(1, 1, 1, ticks - 5, 1 << 20, 1)], elapsed=10.0
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    records = _records(args.size)
    decls = [InstanceDecl(name=r.inst.name) for r in records]
    cache = ViewCache()
    sample = _sample(10)

    def listing() -> None:
        for record, decl in zip(records, decls, strict=True):
            cache.view(
                record.written(),
                decl=decl,
                drift=False,
                resources=sample,
                last_seen=record.inst.last_seen,
                inst_json=record.written_json,
            )

    def seen_and_sampled() -> None:
        nonlocal sample
        sample = _sample(sample.tree[0].cpu_ticks + 10)
        seen = utcnow()
        for record in records:
            record.inst.last_seen = seen

    def written() -> None:
        for record in records:
            record._view = record._view.model_copy()  # what a write leaves: the instance as written, anew

    def best(before_each: Callable[[], None] | None) -> float:
        times = []
        for _ in range(args.rounds):
            if before_each is not None:
                before_each()
            started = time.process_time()
            listing()
            times.append(time.process_time() - started)
        return min(times) * 1e3

    listing()
    gc.disable()
    unchanged, renewed, anew = best(None), best(seen_and_sampled), best(written)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"N={args.size} rows, best CPU of {args.rounds}: unchanged {unchanged:.1f} ms, seen and sampled "
        f"{renewed:.1f} ms, written anew {anew:.1f} ms  [load {load}]"
    )


if __name__ == "__main__":
    main()
