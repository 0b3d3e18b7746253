"""Engine benchmark: start N sleeper instances through the Engine and print what it costs.

Per N: time until all are running; engine RSS and CPU % of one core over an idle window with liveness
probes every 10 s; crash-to-respawn latency (SIGKILL a child → new pid recorded running, ``initial_delay``
0); time to shut everything down. Also: the cost of one ``instance.json`` update, durable (two fsyncs) and
as the engine writes runtime state (no fsync), and, with ``--probe-cost``, the CPU per HTTP health check
of the raw probe vs an ``httpx.AsyncClient``.

    .venv/bin/python bench/engine_bench.py --sizes 50 200 500 --idle 30
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import anyio
import psutil
import structlog

from bench._scratch import scratch_dir
from supervisor.engine import Engine, Event, InstanceRuntime
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import Instance, InstanceStatus
from supervisor.policies import HealthPolicy, RestartPolicy
from supervisor.store import Store
from supervisor.testing import make_instance, make_runtime

SLEEPER = ("sleep", "infinity")


def quiet_json_logs() -> None:
    """Log as the daemon does off a terminal (JSON lines), into /dev/null: the rendering cost stays in."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=open(os.devnull, "w")),  # noqa: SIM115
        cache_logger_on_first_use=True,
    )


class Watcher:
    """on_event callback: counts instances running and wakes whoever waits for a given one."""

    def __init__(self, expected: int) -> None:
        self.running: dict[str, int] = {}
        self.waiting: dict[str, tuple[int, anyio.Event]] = {}
        self.expected = expected
        self.all_running = anyio.Event()

    def __call__(self, event: Event) -> None:
        if event.event != "transition":
            return
        if event.to_status == "running" and event.pid:
            self.running[event.instance_id] = event.pid
            if len(self.running) >= self.expected:
                self.all_running.set()
            want = self.waiting.get(event.instance_id)
            if want is not None and want[0] != event.pid:
                want[1].set()
        elif event.from_status == "running":
            self.running.pop(event.instance_id, None)


def runtimes(store: Store, n: int, interval: float, probe: ProbeKind) -> list[InstanceRuntime]:
    out = []
    for i in range(n):
        inst = make_instance(store, f"sleeper-{i}", port=0)
        out.append(
            make_runtime(
                store,
                inst,
                SLEEPER,
                port=0,
                ready=Probe(kind=ProbeKind.PROCESS, seconds=0),
                live=Probe(kind=probe, seconds=0),
                restart=RestartPolicy(initial_delay=0.01, jitter=0, max_retries=1000, reset_after=3600),
                health=HealthPolicy(interval=interval, timeout=3, failure_threshold=3, start_timeout=10),
                stop_timeout=5,
            )
        )
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_size(n: int, args: argparse.Namespace) -> None:
    with scratch_dir(prefix=f"eyrie-bench-{n}-") as tmp:
        store = Store(Path(tmp) / "instances")
        rts = runtimes(store, n, args.interval, ProbeKind(args.probe))
        watcher = Watcher(n)
        engine = Engine(store, on_event=watcher)
        me = psutil.Process()
        async with anyio.create_task_group() as tg:
            await tg.start(engine.run)
            began = time.perf_counter()
            async with anyio.create_task_group() as adders:
                for rt in rts:
                    adders.start_soon(engine.add, rt)
            await watcher.all_running.wait()
            all_running = time.perf_counter() - began

            await anyio.sleep(1.0)  # let the start-up writes and sweeps finish before measuring idle
            cpu0, wall0 = me.cpu_times(), time.perf_counter()
            await anyio.sleep(args.idle)
            cpu1, wall1 = me.cpu_times(), time.perf_counter()
            idle_cpu = max(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 0.0) / (wall1 - wall0) * 100
            rss = me.memory_info().rss / 2**20
            threads = me.num_threads()

            latencies = []
            for k in range(args.samples):
                rt = rts[k % n]
                old = watcher.running[rt.instance_id]
                done = anyio.Event()
                watcher.waiting[rt.instance_id] = (old, done)
                t0 = time.perf_counter()
                os.kill(old, signal.SIGKILL)
                with anyio.fail_after(10):
                    await done.wait()
                latencies.append((time.perf_counter() - t0) * 1000)
                del watcher.waiting[rt.instance_id]
                await anyio.sleep(0.02)

            t0 = time.perf_counter()
            await engine.shutdown()
            stopped = time.perf_counter() - t0
        assert all(i.status is InstanceStatus.STOPPED for i in store.list())
        print(
            f"N={n:4d}  all running {all_running:6.3f} s | idle {args.idle:.0f} s: RSS {rss:5.1f} MiB, "
            f"CPU {idle_cpu:5.2f} % of a core, {threads} threads | respawn p50 {pct(latencies, 0.5):5.2f} ms "
            f"p95 {pct(latencies, 0.95):5.2f} ms max {max(latencies):5.2f} ms | shutdown {stopped:5.2f} s "
            f"| /proc scans {engine.scanner.scans}",
            flush=True,
        )


def bench_store_write() -> None:
    with scratch_dir(prefix="eyrie-bench-store-") as tmp:
        store = Store(Path(tmp))
        inst = make_instance(store, "writer")

        def bump(i: Instance) -> None:
            i.restart_count += 1

        for durable, what in ((True, "durable: + fsync file and dir"), (False, "runtime state: no fsync")):
            times = []
            cpu0 = time.process_time()
            for _ in range(200):
                t0 = time.perf_counter()
                store.update(inst.id, bump, durable=durable)
                times.append((time.perf_counter() - t0) * 1000)
            cpu = (time.process_time() - cpu0) / 200 * 1000
            print(
                f"instance.json update (read, change, temp file, rename; {what}): "
                f"p50 {statistics.median(times):.2f} ms, p95 {pct(times, 0.95):.2f} ms, CPU {cpu:.2f} ms",
                flush=True,
            )


async def bench_probe_cost(requests: int) -> None:
    import httpx

    from supervisor.engine import ProbeContext, check, spawn
    from supervisor.testing import faulty, free_port, wait_for

    with scratch_dir(prefix="eyrie-bench-probe-") as tmp:
        port = free_port()
        proc = spawn(
            faulty("--http", "--port", str(port)),
            env=dict(os.environ),
            cwd=Path(tmp),
            log_path=Path(tmp) / "l",
        )
        try:
            probe = Probe(kind=ProbeKind.HTTP, path="/health")
            ctx = ProbeContext(port=port, process=proc, timeout=3)

            async def ready() -> bool:
                return (await check(probe, ctx)).ok

            await wait_for(ready)
            cpu0 = time.process_time()
            for _ in range(requests):
                assert (await check(probe, ctx)).ok
            raw = (time.process_time() - cpu0) / requests * 1e6
            async with httpx.AsyncClient(timeout=3) as client:
                cpu0 = time.process_time()
                for _ in range(requests):
                    r = await client.get(f"http://127.0.0.1:{port}/health")
                    assert r.status_code == 200
                pooled = (time.process_time() - cpu0) / requests * 1e6
            print(
                f"HTTP health check CPU per request: raw probe {raw:.0f} µs, "
                f"httpx.AsyncClient {pooled:.0f} µs (client CPU only; server excluded)",
                flush=True,
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


async def main(args: argparse.Namespace) -> None:
    quiet_json_logs()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, sleeper {' '.join(SLEEPER)}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    bench_store_write()
    if args.probe_cost:
        await bench_probe_cost(args.requests)
    for n in args.sizes:
        await bench_size(n, args)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    p.add_argument("--idle", type=float, default=30.0, help="idle window in seconds (default 30)")
    p.add_argument("--interval", type=float, default=10.0, help="liveness probe interval (default 10 s)")
    p.add_argument("--probe", choices=["process", "tcp"], default="process", help="liveness probe kind")
    p.add_argument("--samples", type=int, default=50, help="respawn latency samples")
    p.add_argument("--probe-cost", action="store_true", help="also compare raw and httpx HTTP probe cost")
    p.add_argument("--requests", type=int, default=500, help="requests for --probe-cost")
    return p.parse_args()


if __name__ == "__main__":
    anyio.run(main, parse())
