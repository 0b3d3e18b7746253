"""Adoption benchmark: SIGKILL of a real ``eyried`` with N sleepers → a new one exec'd → ``fleet ready``.

One home of N ``sleep infinity`` instances (``sandbox: off``, as ``bench.compare`` runs them) is started once;
then, per round, the daemon is SIGKILLed and a new one launched, and printed: the ``seconds`` of its
``fleet ready`` event (from its exec, its own count), the launch → that event seen on the event stream, the
daemon's CPU seconds until the event (its ``cpu_seconds``; read from ``/proc`` when it is seen, for a daemon
whose event lacks them), how many instances it restarted, and its RSS (``smaps_rollup``) once
settled. ``--cli`` adds the same adoption as the CLI sees it: ``eyriectl ps --json`` run in a loop from the
launch until it shows every instance running with its old pid. Last, the floors measured the same way:
``python -c pass`` and import-only processes (wall, CPU and RSS at the end of each). Fleets take ports from
51000–52999 (``EYRIE_BENCH_PORTS=FIRST-LAST`` moves them); the run removes its home's port claims.

    .venv/bin/python -m bench.adopt_bench --size 200 --rounds 5 --cli
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio

from bench._scratch import scratch_dir
from bench.daemon_bench import Bench, fleet_text
from supervisor.client import ControlClient
from supervisor.errors import DaemonNotRunning

EYRIECTL = str(Path(sys.executable).parent / "eyriectl")

FLOORS = {
    "python -c pass": "pass",
    "import the required libraries": "import anyio, pydantic, structlog, ruamel.yaml",
    "import supervisor.daemon.main": "import supervisor.daemon.main",
}


_RSS = "\nimport sys; sys.stdout.write(open('/proc/self/status').read().split('VmRSS:')[1])"


def fleet(n: int) -> str:
    first, _, last = os.environ.get("EYRIE_BENCH_PORTS", "51000-52999").partition("-")
    text = fleet_text(n, confined=False).replace("first: 47000, last: 48999", f"first: {first}, last: {last}")
    return text.replace("initial_delay: 10ms", "initial_delay: 0")


def say(text: str) -> None:
    print(f"{text}  [load {' '.join(f'{x:.2f}' for x in os.getloadavg())}]", flush=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def fleet_ready(bench: Bench) -> tuple[dict[str, object], float]:
    """The new daemon's ``fleet ready`` event's data, and when it was seen (``time.perf_counter()``)."""
    with anyio.fail_after(60):
        while True:
            try:
                async with ControlClient(bench.home) as client, client.events() as events:
                    for event in await client.recent_events(1000):
                        if event.event == "daemon" and event.detail == "fleet ready":
                            return dict(event.data or {}), time.perf_counter()
                    async for event in events:
                        if event.event == "daemon" and event.detail == "fleet ready":
                            return dict(event.data or {}), time.perf_counter()
            except DaemonNotRunning:
                await anyio.sleep(0.005)
    raise AssertionError("unreachable")


def cli_adopted(bench: Bench, old: dict[str, int], launched: float, timeout: float = 60) -> float:
    """Seconds from ``launched`` until ``eyriectl ps --json`` shows every instance with its old pid."""
    env = {**os.environ, "EYRIE_HOME": str(bench.home.root)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(
            [EYRIECTL, "ps", "--json"], capture_output=True, text=True, env=env, check=False
        )
        if result.returncode == 0:
            rows = json.loads(result.stdout)
            if {r["name"]: r.get("pid") for r in rows if r.get("status") == "running"} == old:
                return time.perf_counter() - launched
        time.sleep(0.01)
    raise RuntimeError(f"eyriectl ps did not show all {len(old)} adopted within {timeout:.0f} s")


async def rounds(n: int, count: int, settle: float, cli: bool) -> None:
    with scratch_dir(prefix=f"eyrie-adopt-{n}-") as tmp:
        bench = Bench(Path(tmp), n)
        (bench.home.root / "fleet.yaml").write_text(fleet(n))
        try:
            await bench.wait_all_running(bench.start_daemon(), want_ready=True)
            seconds, seen, cpus, rss, clis = [], [], [], [], []
            for i in range(count + int(cli)):
                before = await bench.pids()
                assert bench.proc is not None
                bench.proc.kill()
                bench.proc.wait(10)
                launched = bench.start_daemon()
                if i == count:
                    clis.append(await anyio.to_thread.run_sync(cli_adopted, bench, before, launched))
                    say(f"  CLI round: launch → `ps` shows all adopted {clis[-1]:.3f} s")
                    continue
                data, at = await fleet_ready(bench)
                cpu = float(str(data.get("cpu_seconds", bench.daemon_cpu())))
                after = await bench.pids()
                restarted = sum(1 for name, pid in before.items() if after.get(name) != pid)
                await anyio.sleep(settle)
                assert bench.proc is not None
                seconds.append(float(str(data["seconds"])))
                seen.append(at - launched)
                cpus.append(cpu)
                rss.append(rss_mib(bench.proc.pid))
                say(
                    f"  round {i + 1}: fleet ready {seconds[-1]:.3f} s after exec (adopted "
                    f"{data['adopted']}, started {data['started']}), seen {seen[-1]:.3f} s after launch, "
                    f"daemon CPU {cpu:.2f} s, {restarted} restarted, RSS {rss[-1]:.1f} MiB"
                )
            say(
                f"N={n}, median of {count}: fleet ready {statistics.median(seconds):.3f} s, seen "
                f"{statistics.median(seen):.3f} s, CPU {statistics.median(cpus):.2f} s, "
                f"RSS {statistics.median(rss):.1f} MiB"
            )
        finally:
            if bench.proc is not None and bench.proc.poll() is None:
                bench.stop_daemon()


def floor(code: str, runs: int) -> None:
    walls, cpus, peaks = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code + _RSS], stdout=subprocess.PIPE)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
        peaks.append(int(out.split()[0]) / 1024)
    label = next(k for k, v in FLOORS.items() if v == code)
    say(
        f"  {label}: wall {statistics.median(walls):.3f} s, CPU {statistics.median(cpus):.3f} s, "
        f"RSS {statistics.median(peaks):.1f} MiB (median of {runs})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before RSS is read")
    parser.add_argument("--cli", action="store_true", help="one more round, timed through `eyriectl ps`")
    parser.add_argument("--floor-runs", type=int, default=5)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a killed bench still stops its daemon
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    anyio.run(rounds, args.size, args.rounds, args.settle, args.cli)
    if args.floor_runs:
        say("floors:")
    for code in FLOORS.values() if args.floor_runs else ():
        floor(code, args.floor_runs)


if __name__ == "__main__":
    main()
