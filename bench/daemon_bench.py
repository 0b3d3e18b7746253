"""Daemon benchmark: a real ``eyried`` with N sleeper instances, measured from the outside.

Per N: cold start (provision + start) and warm start (already provisioned) until all are running (from the
daemon's launch, imports included, to the last ``running`` event on its event stream); daemon RSS
and CPU % of one core over an idle window with liveness probes every 10 s; crash-to-respawn latency through
the daemon (SIGKILL a child → ``running`` event with a new pid on the event stream, ``initial_delay`` at its
10 ms floor); SIGHUP with no change (time, processes restarted); SIGKILL of the daemon → time until a new
one has adopted all N (and how many it restarted). ``--unconfined`` runs the sleepers with ``sandbox: off``,
to compare the cost of confinement. Then the fleet stopped through the API as ``eyriectl stop --all``
does (one request per instance, all at once, waiting) and, after a start, stopped by the daemon's own
shutdown (SIGTERM → every child gone, and → the daemon exited). Adoption is also timed by the daemon's
``fleet ready`` event (seconds from its exec, as the event says). The daemon's CPU seconds are printed
beside the wall-clock figures, which a loaded machine stretches. Fleets take ports from 47000–48999.

    .venv/bin/python bench/daemon_bench.py --sizes 50 200 500 --idle 30 --samples 50
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import anyio
import psutil

from bench._scratch import scratch_dir
from supervisor.client import ControlClient
from supervisor.errors import DaemonNotRunning
from supervisor.paths import Home

FLEET_HEAD = """\
version: 1
daemon: {ports: {first: 47000, last: 48999}}
defaults:
  restart: {policy: always, initial_delay: 10ms, factor: 2, max_delay: 1s, jitter: 0, max_retries: 1000}
  health: {interval: 10s, timeout: 3s, failure_threshold: 3, start_timeout: 30s}
  stop_timeout: 5s
frameworks:
  embedded:
    command: [sleep, infinity]
    ready: {kind: process, seconds: 0}
    live: {kind: process, seconds: 0}
instances:
"""


def fleet_text(n: int, *, confined: bool = True) -> str:
    head = FLEET_HEAD if confined else FLEET_HEAD.replace("instances:\n", "    sandbox: off\ninstances:\n")
    return head + "".join(f"  - name: sleeper-{i:04d}\n" for i in range(n))


class Bench:
    def __init__(self, home: Path, n: int) -> None:
        self.home = Home(home)
        self.n = n
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_event: dict[str, object] | None = None
        self.cpu = 0.0

    def start_daemon(self) -> float:
        env = {**os.environ, "EYRIE_HOME": str(self.home.root)}
        env.pop("NOTIFY_SOCKET", None)
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisor.daemon",
                "--home",
                str(self.home.root),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.home.root / "eyried.err", "ab"),  # noqa: SIM115
            env=env,
        )
        return started

    async def pids(self) -> dict[str, int]:
        async with ControlClient(self.home) as client:
            return {v.name: v.pid for v in await client.list_instances() if v.status == "running" and v.pid}

    def daemon_cpu(self) -> float:
        """CPU seconds (user + system) the daemon has used so far."""
        assert self.proc is not None
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    async def wait_all_running(self, started: float, *, want_ready: bool = False) -> float:
        """Seconds from ``started`` until all N are running, read off the event stream as soon as the
        control socket answers (one list when it connects, for what was running already). The daemon is
        not polled meanwhile: a list of N instances would compete with the start it measures."""
        with anyio.fail_after(120):
            while True:
                try:
                    async with ControlClient(self.home) as client, client.events() as events:
                        views = await client.list_instances()
                        running = {v.name for v in views if v.status == "running"}
                        while len(running) < self.n:
                            event = await anext(events)
                            if event.event == "daemon" and event.detail == "fleet ready":
                                self.ready_event = dict(event.data or {})
                            if event.event != "transition" or not event.instance:
                                continue
                            if event.to_status == "running":
                                running.add(event.instance)
                            else:
                                running.discard(event.instance)
                        elapsed = time.perf_counter() - started
                        self.cpu = self.daemon_cpu()
                        if want_ready:  # the daemon's own word for it follows the last transition
                            with anyio.move_on_after(30):
                                while self.ready_event is None:
                                    event = await anext(events)
                                    if event.event == "daemon" and event.detail == "fleet ready":
                                        self.ready_event = dict(event.data or {})
                        return elapsed
                except DaemonNotRunning:
                    await anyio.sleep(0.005)

    def stop_daemon(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)

    async def stop_all_via_api(self) -> float:
        """Seconds for N stop requests sent at once (``eyriectl stop --all``), each waiting, to answer."""
        async with ControlClient(self.home) as client:
            names = [v.name for v in await client.list_instances()]
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(partial(client.stop, name, wait=True))
            elapsed = time.perf_counter() - started
            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(partial(client.start, name, wait=True))
        return elapsed

    async def shutdown_timed(self) -> tuple[float, float]:
        """SIGTERM → every child gone, and → the daemon exited (seconds)."""
        assert self.proc is not None
        children = [psutil.Process(pid) for pid in (await self.pids()).values()]
        cpu_before = self.daemon_cpu()
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        await anyio.to_thread.run_sync(lambda: psutil.wait_procs(children, timeout=60))
        gone = time.perf_counter() - started
        self.cpu = self.daemon_cpu() - cpu_before
        await anyio.to_thread.run_sync(lambda: self.proc.wait(120) if self.proc else None)
        return gone, time.perf_counter() - started

    async def idle(self, seconds: float) -> tuple[float, float]:
        assert self.proc is not None
        daemon = psutil.Process(self.proc.pid)
        daemon.cpu_percent()
        await anyio.sleep(seconds)
        return daemon.cpu_percent(), daemon.memory_info().rss / 2**20

    async def respawn_latency(self, samples: int) -> tuple[list[float], int]:
        """Latencies in ms, and how many kills showed no new ``running`` event within 10 s."""
        latencies: list[float] = []
        missed = 0
        pids = await self.pids()
        names = sorted(pids)
        async with ControlClient(self.home) as client, client.events() as events:
            # The stream is live once it carries an event caused after it opened: a no-change reload's.
            await client.reload()
            with anyio.fail_after(10):
                async for event in events:
                    if event.event == "reload":
                        break
            for i in range(samples):
                name = names[i % len(names)]
                old = pids[name]
                killed = time.perf_counter()
                os.kill(old, signal.SIGKILL)
                with anyio.move_on_after(10):
                    async for event in events:
                        if event.instance == name and event.to_status == "running" and event.pid != old:
                            latencies.append((time.perf_counter() - killed) * 1000)
                            assert event.pid is not None
                            pids[name] = event.pid
                            break
                if len(latencies) + missed <= i:
                    missed += 1
                    pids = await self.pids()
                await anyio.sleep(0.02)
        return latencies, missed

    async def reload_no_change(self) -> tuple[float, float, int]:
        before = await self.pids()
        started = time.perf_counter()
        async with ControlClient(self.home) as client:
            result = await client.reload()
        round_trip = (time.perf_counter() - started) * 1000
        after = await self.pids()
        restarted = sum(1 for name, pid in before.items() if after.get(name) != pid)
        return round_trip, result.seconds * 1000, restarted

    async def adoption_after_sigkill(self) -> tuple[float, int]:
        assert self.proc is not None
        before = await self.pids()
        self.proc.kill()
        self.proc.wait(10)
        started = self.start_daemon()
        elapsed = await self.wait_all_running(started, want_ready=True)
        after = await self.pids()
        return elapsed, sum(1 for name, pid in before.items() if after.get(name) != pid)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def say(text: str) -> None:
    print(text, flush=True)


async def run_size(n: int, idle: float, samples: int, confined: bool) -> None:
    with scratch_dir(prefix=f"eyrie-bench-{n}-") as tmp:
        bench = Bench(Path(tmp), n)
        (bench.home.root / "fleet.yaml").write_text(fleet_text(n, confined=confined))
        how = "confined" if confined else "sandbox: off"
        say(f"N={n}, {how} (load average {os.getloadavg()[0]:.2f})")
        try:
            cold = await bench.wait_all_running(bench.start_daemon())
            say(
                f"  all running after cold start (provision + start): {cold:.2f} s,"
                f" daemon CPU {bench.cpu:.2f} s"
            )
            bench.stop_daemon()
            warm = await bench.wait_all_running(bench.start_daemon())
            say(
                f"  all running after warm start (provisioned):       {warm:.2f} s,"
                f" daemon CPU {bench.cpu:.2f} s"
            )
            await anyio.sleep(2.0)  # the start-up's deferred sweeps and writes finish before the idle window
            cpu, rss = await bench.idle(idle)
            say(f"  daemon idle over {idle:.0f} s: RSS {rss:.1f} MiB, CPU {cpu:.2f} % of one core")
            latencies, missed = await bench.respawn_latency(samples)
            seen = (
                f"p50 {statistics.median(latencies):.1f} ms, p95 {pct(latencies, 0.95):.1f} ms, "
                f"max {max(latencies):.1f} ms"
                if latencies
                else "no respawn seen"
            )
            without = f", {missed} without an event within 10 s" if missed else ""
            say(f"  crash-to-respawn via daemon ({len(latencies)} samples{without}): {seen}")
            round_trip, applied, restarted = await bench.reload_no_change()
            say(
                f"  SIGHUP-equivalent reload, no change: {round_trip:.1f} ms round trip "
                f"({applied:.1f} ms applying), {restarted} restarted"
            )
            bench.ready_event = None
            adopted, readopt_restarts = await bench.adoption_after_sigkill()
            say(
                f"  kill -9 daemon → all adopted by a new one: {adopted:.2f} s, daemon CPU {bench.cpu:.2f} s,"
                f" {readopt_restarts} restarted"
            )
            if bench.ready_event is not None:
                say(f"  the new daemon's 'fleet ready' event: {bench.ready_event}")
            stop_all = await bench.stop_all_via_api()
            say(f"  stop --all through the API (N requests at once, waiting): {stop_all:.3f} s")
            gone, exited = await bench.shutdown_timed()
            say(
                f"  daemon shutdown (SIGTERM): all children gone {gone:.3f} s (daemon CPU {bench.cpu:.3f} s),"
                f" daemon exited {exited:.3f} s"
            )
            say(f"  (load average at the end {os.getloadavg()[0]:.2f})")
        finally:
            if bench.proc is not None and bench.proc.poll() is None:
                bench.stop_daemon()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--idle", type=float, default=30.0, help="idle window in seconds")
    parser.add_argument("--samples", type=int, default=50, help="crash-to-respawn samples")
    parser.add_argument("--unconfined", action="store_true", help="run the sleepers with sandbox: off")
    args = parser.parse_args()
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for n in args.sizes:
        anyio.run(run_size, n, args.idle, args.samples, not args.unconfined)


if __name__ == "__main__":
    main()
