"""Scale check: a real ``eyried`` with N sleeper instances (default 1000), started as systemd starts a
service (soft limit on open files 1024; the hard limit is this shell's), taken through what the issue's
"Scale" bullet names.

In order: first start (provisioning) unless ``--home`` holds a provisioned fleet; warm start; steady state
(RSS, open descriptors, CPU over an idle window); ``--storms`` crash storms (``--kill`` agents SIGKILLed at
once → all back: until the last runs again, per-agent p50/p95, with ``eyriectl ps`` run back to back
meanwhile, and the daemon's answer to ``GET /v1/instances`` alone: p50/p95 while the restarts are in
flight, and idle for comparison); a reload with no change and one with one instance changed; SIGKILL of
the daemon → a new one has adopted all; stop. One event stream is open from the first storm to the
adoption: it must see every event id in sequence, no ``gap``, and a ``running`` per killed agent. What the
daemon logged as a warning or error is counted. Figures are printed, never asserted; the fleet is stopped
(its port claims released) in a ``finally``, Ctrl-C included.

    .venv/bin/python -m bench.scale_check --size 1000 --kill 100 --storms 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import psutil

from bench._scratch import scratch_dir
from bench.daemon_bench import FLEET_HEAD, Bench, pct
from supervisor.client import ControlClient
from supervisor.control.hub import parse_event_id
from supervisor.engine.events import Event
from supervisor.paths import Home

PORTS = "daemon:\n  ports: {first: 53000, last: 54999}\n"
EYRIECTL = str(Path(sys.executable).with_name("eyriectl"))


def fleet_text(n: int, changed: str = "") -> str:
    head = FLEET_HEAD.replace("version: 1\n", f"version: 1\n{PORTS}").replace(
        "instances:\n", "    sandbox: off\ninstances:\n"
    )
    rows = [f"  - name: sleeper-{i:04d}\n" for i in range(n)]
    if changed:
        rows[0] += f"    env: {{SCALE_CHECK: '{changed}'}}\n"
    return head + "".join(rows)


def say(text: str) -> None:
    print(f"{text}  [load {os.getloadavg()[0]:.2f}]", flush=True)


class ScaleBench(Bench):
    """`Bench` with the daemon started under systemd's default limit on open files."""

    nofile = "1024:1024"

    def start_daemon(self) -> float:
        env = {**os.environ, "EYRIE_HOME": str(self.home.root)}
        env.pop("NOTIFY_SOCKET", None)
        home = str(self.home.root)
        argv = [sys.executable, "-m", "supervisor.daemon", "--home", home, "--log-level", "info"]
        started = time.perf_counter()
        with open(self.home.root / "eyried.err", "ab") as err:
            self.proc = subprocess.Popen(
                ["prlimit", f"--nofile={self.nofile}", "--", *argv],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )
        return started


class EventLog:
    """Every event of one stream, checked for holes and gaps."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gaps = 0
        self.holes = 0
        self._last: tuple[str, int] | None = None
        self.reloaded = anyio.Event()

    def add(self, event: Event) -> None:
        self.events.append(event)
        if event.event == "reload":
            self.reloaded.set()
        if event.event == "gap":
            self.gaps += 1
            return
        pos = parse_event_id(event.id)
        if pos is None:
            return
        if self._last is not None and pos[0] == self._last[0] and pos[1] != self._last[1] + 1:
            self.holes += 1
        self._last = pos


async def follow(stream: AsyncIterator[Event], log: EventLog) -> None:
    async for event in stream:
        log.add(event)


def ps_once(home: Path) -> float:
    env = {**os.environ, "EYRIE_HOME": str(home)}
    started = time.perf_counter()
    quiet = subprocess.DEVNULL
    subprocess.run([EYRIECTL, "ps"], stdout=quiet, stderr=quiet, env=env, check=False)
    return (time.perf_counter() - started) * 1000


async def ps_until(home: Path, done: anyio.Event, out: list[float]) -> None:
    while not done.is_set():
        out.append(await anyio.to_thread.run_sync(ps_once, home))


async def listing_once(home: Path) -> float:
    """Milliseconds for the daemon's answer to ``GET /v1/instances`` alone (what ``ps`` asks for)."""
    started = time.perf_counter()
    async with ControlClient(Home(home)) as client:
        await client.list_instances()
    return (time.perf_counter() - started) * 1000


async def listing_until(home: Path, done: anyio.Event, out: list[float]) -> None:
    while not done.is_set():
        out.append(await listing_once(home))


async def storm(
    bench: ScaleBench, log: EventLog, kill: int, ps: list[float], listing: list[float]
) -> tuple[float, list[float], int]:
    """SIGKILL ``kill`` agents at once; (all back, per-agent latencies in ms, agents not back within 60 s)."""
    pids = await bench.pids()
    victims = dict(sorted(pids.items())[:kill])
    back: dict[str, float] = {}
    seen = len(log.events)
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ps_until, bench.home.root, done, ps)
        tg.start_soon(listing_until, bench.home.root, done, listing)
        killed = time.perf_counter()
        for pid in victims.values():
            os.kill(pid, signal.SIGKILL)
        with anyio.move_on_after(60):
            while len(back) < len(victims):
                for event in log.events[seen:]:
                    old = victims.get(event.instance)
                    if old is not None and event.to_status == "running" and event.pid not in (None, old):
                        back.setdefault(event.instance, (time.perf_counter() - killed) * 1000)
                seen = len(log.events)
                await anyio.sleep(0.001)
        done.set()
    latencies = sorted(back.values())
    return (max(latencies) if latencies else 0.0), latencies, len(victims) - len(back)


def daemon_figures(pid: int) -> str:
    proc = psutil.Process(pid)
    lines = Path(f"/proc/{pid}/limits").read_text().splitlines()
    limits = next(line for line in lines if "open files" in line)
    soft, hard = limits.split()[3:5]
    return (
        f"RSS {proc.memory_info().rss / 2**20:.1f} MiB, {proc.num_fds()} open fds, limit {soft}/{hard},"
        f" {proc.num_threads()} threads"
    )


def logged_problems(home: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    path = home / "eyried.err"
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            counts["(not JSON) " + line[:60]] = counts.get("(not JSON) " + line[:60], 0) + 1
            continue
        if entry.get("level") in ("warning", "error", "critical"):
            key = f"{entry['level']} {entry.get('event')}"
            counts[key] = counts.get(key, 0) + 1
    return counts


async def run(args: argparse.Namespace, home: Path) -> None:
    bench = ScaleBench(home, args.size)
    bench.nofile = args.nofile
    fleet = home / "fleet.yaml"
    provisioned = (home / "instances").is_dir()
    fleet.write_text(fleet_text(args.size))
    say(f"N={args.size}, daemon started with nofile {args.nofile}, home {home}")
    try:
        if not provisioned:
            cold = await bench.wait_all_running(bench.start_daemon())
            say(f"first start (provisioning) → all running: {cold:.2f} s")
            bench.stop_daemon()
        warm = await bench.wait_all_running(bench.start_daemon())
        say(f"warm start → all running: {warm:.2f} s")
        assert bench.proc is not None
        await anyio.sleep(2.0)
        cpu, _ = await bench.idle(args.idle)
        say(f"steady: {daemon_figures(bench.proc.pid)}, CPU {cpu:.2f} % of one core over {args.idle:.0f} s")
        idle_ps = [await anyio.to_thread.run_sync(ps_once, home) for _ in range(10)]
        say(f"eyriectl ps, idle: p50 {statistics.median(idle_ps):.0f} ms, p95 {pct(idle_ps, 0.95):.0f} ms")
        idle_listing = [await listing_once(home) for _ in range(10)]
        say(
            f"GET /v1/instances, idle: p50 {statistics.median(idle_listing):.0f} ms,"
            f" p95 {pct(idle_listing, 0.95):.0f} ms"
        )

        log = EventLog()
        client = ControlClient(bench.home)
        async with client, client.events() as stream, anyio.create_task_group() as tg:
            tg.start_soon(follow, stream, log)
            await client.reload()  # the stream is live once it carries this reload's event
            with anyio.fail_after(10):
                await log.reloaded.wait()
            ps: list[float] = []
            listing: list[float] = []
            all_back: list[float] = []
            latencies: list[float] = []
            for i in range(args.storms):
                took, each, missing = await storm(bench, log, args.kill, ps, listing)
                all_back.append(took)
                latencies += each
                say(
                    f"storm {i + 1}: {args.kill} SIGKILLed → all back in {took:.0f} ms"
                    f" (per agent p50 {statistics.median(each):.0f} / p95 {pct(each, 0.95):.0f} ms),"
                    f" {missing} not back"
                )
                await anyio.sleep(1.0)
            say(
                f"storms: per agent p50 {statistics.median(latencies):.0f}"
                f" / p95 {pct(latencies, 0.95):.0f} ms;"
                f" eyriectl ps during them ({len(ps)} runs): p50 {statistics.median(ps):.0f} /"
                f" p95 {pct(ps, 0.95):.0f} ms; GET /v1/instances ({len(listing)} requests):"
                f" p50 {statistics.median(listing):.0f} / p95 {pct(listing, 0.95):.0f} ms"
            )
            round_trip, applied, restarted = await bench.reload_no_change()
            say(f"reload, no change: {round_trip:.0f} ms ({applied:.0f} ms applying), {restarted} restarted")
            fleet.write_text(fleet_text(args.size, changed=str(time.time())))
            started = time.perf_counter()
            result = await client.reload()
            round_trip, applied = (time.perf_counter() - started) * 1000, result.seconds * 1000
            restarted = len(result.restarted)
            say(
                f"reload, one changed: {round_trip:.0f} ms ({applied:.0f} ms applying), {restarted} restarted"
            )
            await anyio.sleep(1.0)
            running = sum(1 for e in log.events if e.to_status == "running")
            kinds: dict[str, int] = {}
            for e in log.events:
                kinds[e.event] = kinds.get(e.event, 0) + 1
            say(
                f"event stream: {len(log.events)} events ({kinds}), {running} to running"
                f" (≥ {args.kill * args.storms + 1} expected), {log.holes} holes in the ids, {log.gaps} gaps"
            )
            tg.cancel_scope.cancel()
        adopted, restarted = await bench.adoption_after_sigkill()
        say(f"kill -9 eyried → new one has all {args.size} running: {adopted:.2f} s, {restarted} restarted")
        say(f"after adoption: {daemon_figures(bench.proc.pid)}")
    finally:
        if bench.proc is not None and bench.proc.poll() is None:
            started = time.perf_counter()
            bench.stop_daemon()
            say(f"fleet stop: {time.perf_counter() - started:.2f} s")
        problems = logged_problems(home)
        say(f"daemon logged: {problems or 'no warning or error'}")


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--kill", type=int, default=100, help="agents SIGKILLed at once per storm")
    parser.add_argument("--storms", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0, help="idle window in seconds")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    parser.add_argument(
        "--nofile", default=f"1024:{hard}", help="the daemon's soft:hard limit on open files (1024:ours)"
    )
    parser.add_argument(
        "--home",
        type=Path,
        help="keep the fleet here (provisioned once, reused); its port claims last until it is removed",
    )
    args = parser.parse_args()
    if shutil.which("prlimit") is None:
        sys.exit("scale_check: needs util-linux prlimit")
    if args.home is not None:
        args.home.mkdir(parents=True, exist_ok=True)
        anyio.run(run, args, args.home.absolute())
        return
    with scratch_dir(prefix="eyrie-scale-") as tmp:
        anyio.run(run, args, Path(tmp))


if __name__ == "__main__":
    main()
