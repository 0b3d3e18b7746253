"""CLI latency: ``eyriectl`` commands as fresh processes against a real ``eyried`` with N sleeper instances.

Each command runs ``--runs`` times, each time a new interpreter (as an operator's shell runs it); the figures
are the wall-clock median and p95, and the median CPU time (user + system) of the eyriectl process itself,
which a machine busy with other work inflates less than the wall clock. Two floors put them in scale:
``python -c pass`` (the interpreter alone) and ``python -c "import supervisor.cli.main"`` (the entry point's
imports, no command).

    .venv/bin/python -m bench.cli_bench --size 200 --runs 30

``EYRIE_BENCH_PORTS=FIRST-LAST`` moves the fleet's ports (default 55000–56999).

Every process it starts (the daemon, whose sleepers it stops) is ended on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio

from bench._scratch import scratch_dir
from bench.daemon_bench import Bench, fleet_text, pct, say

EYRIECTL = str(Path(sys.executable).parent / "eyriectl")


def ports_line() -> str:
    """The bench fleet's port range, away from the test suites' default range: 55000–56999, or
    ``EYRIE_BENCH_PORTS=FIRST-LAST`` (two runs side by side must not share one)."""
    first, _, last = os.environ.get("EYRIE_BENCH_PORTS", "55000-56999").partition("-")
    return f"daemon: {{ports: {{first: {int(first)}, last: {int(last)}}}}}\n"


def commands(home: Path) -> list[tuple[str, list[str]]]:
    """Label → argv of every measured process, floors first."""
    ctl = [EYRIECTL, "--home", str(home)]
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("import supervisor.cli.main", [sys.executable, "-c", "import supervisor.cli.main"]),
        ("eyriectl --version", [EYRIECTL, "--version"]),
        ("eyriectl --help", [*ctl, "--help"]),
        ("eyriectl ps", [*ctl, "ps"]),
        ("eyriectl ps --json", [*ctl, "ps", "--json"]),
        ("eyriectl status", [*ctl, "status"]),
        ("eyriectl status --json", [*ctl, "status", "--json"]),
    ]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds from spawn to exit, and of CPU the process used; a command that fails stops the bench
    (its figure would be a lie)."""
    cpu = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode not in (0, 4):  # 4: status of a degraded fleet still answers in full
        raise SystemExit(f"{argv} exited {result.returncode}: {result.stderr.decode(errors='replace')}")
    return elapsed, (_children_cpu() - cpu) * 1000


def measure(home: Path, runs: int) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("EYRIE_HOME", None)
    for label, argv in commands(home):
        timed(argv, env)  # warm the page cache and the .pyc files
        samples = [timed(argv, env) for _ in range(runs)]
        wall = [w for w, _ in samples]
        cpu = statistics.median(c for _, c in samples)
        say(
            f"  {label:<28} median {statistics.median(wall):6.1f} ms   p95 {pct(wall, 0.95):6.1f} ms"
            f"   CPU {cpu:5.1f} ms   ({runs} runs)"
        )


async def all_running(bench: Bench) -> None:
    await bench.wait_all_running(bench.start_daemon())


def run(n: int, runs: int) -> None:
    with scratch_dir(prefix=f"eyrie-cli-bench-{n}-") as tmp:
        bench = Bench(Path(tmp), n)
        fleet = re.sub(r"^daemon: .*\n", ports_line(), fleet_text(n), count=1, flags=re.MULTILINE)
        (bench.home.root / "fleet.yaml").write_text(fleet)
        say(f"N={n} (load average {os.getloadavg()[0]:.2f})")
        try:
            anyio.run(all_running, bench)
            measure(bench.home.root, runs)
        finally:
            if bench.proc is not None and bench.proc.poll() is None:
                bench.stop_daemon()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200, help="sleeper instances")
    parser.add_argument("--runs", type=int, default=30, help="runs of each command (20 or more)")
    args = parser.parse_args()
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    try:
        run(args.size, max(args.runs, 20))
    except KeyboardInterrupt:
        say("interrupted; daemon stopped")


if __name__ == "__main__":
    main()
