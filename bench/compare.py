"""Side by side: eyried, supervisord 4.x and a sandboxed ``systemd --user``, measured with one method.

The workload is the same for all three: N ``sleep infinity`` children, restarted whenever they die (eyried:
the ``embedded`` framework, readiness ``process`` 0 s, liveness ``process`` every 10 s, restart ``always``
with ``initial_delay: 0`` (its floor, as systemd's ``RestartSec=0``), ``sandbox: off``; supervisord:
``autorestart=true``, ``startsecs=0``; systemd: a template unit with ``Restart=always``, ``RestartSec=0``). A
manager's children are the processes that exec'd ``sleep`` below it; when they exec'd comes from the kernel's
proc connector (its own ``CLOCK_MONOTONIC`` stamp), and every time runs from ``time.monotonic_ns()`` taken
right before the cause (a launch, a command, a SIGKILL). Figures are printed, one table per N with eyried /
anchor ratios, a growth table across N, and the floors of this machine. See bench/README.md.

    .venv/bin/python -m bench.compare --sizes 50 200 1000
    .venv/bin/python -m bench.compare --quick --sizes 3 --managers eyried

Every process it starts carries ``EYRIE_BENCH_RUN=<its run dir>`` in its environment and is ended on the way
out, Ctrl-C and SIGTERM included. Exits non-zero only when it could not measure (an anchor that cannot run
here is skipped with a line saying why).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench._compare import measure, procs, supervisord, systemd, tables
from bench._compare.proc_events import ExecWatcher
from bench._compare.runs import Options, run_eyried, run_supervisord, run_systemd, say
from bench._scratch import release_claims

_LARGE = 1000
"""From this N on, respawn samples are ``--samples-large`` (a full run stays under ~10 minutes)."""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument(
        "--managers",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=list(tables.MANAGERS),
        help="comma-separated, of eyried,supervisord,systemd (default: all three)",
    )
    parser.add_argument("--samples", type=int, default=50, help="crash → respawn samples per manager and N")
    parser.add_argument("--samples-large", type=int, default=20, help=f"the same from N = {_LARGE} on")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window in seconds")
    parser.add_argument("--storm", type=int, default=100, help="children SIGKILLed at once at the largest N")
    parser.add_argument("--storm-rounds", type=int, default=5, help="storms in a row, figures pooled")
    parser.add_argument("--quick", action="store_true", help="a short smoke: 5 samples, 2 s idle, storm of 3")
    args = parser.parse_args(argv)
    unknown = set(args.managers) - set(tables.MANAGERS)
    if unknown or not args.managers:
        parser.error(
            f"--managers takes {','.join(tables.MANAGERS)}; got {','.join(sorted(unknown)) or 'none'}"
        )
    if min(args.sizes) < 1:
        parser.error("--sizes must be positive")
    if args.quick:
        args.samples, args.samples_large, args.idle, args.storm, args.storm_rounds = 5, 5, 2.0, 3, 2
    args.sizes = sorted(set(args.sizes))
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _unavailable(manager: str) -> str | None:
    if manager == "supervisord":
        return supervisord.unavailable_reason()
    if manager == "systemd":
        return systemd.unavailable_reason()
    return None


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _measure_all(
    args: argparse.Namespace, run_dir: Path, watcher: ExecWatcher
) -> tuple[tables.Results, list[str], bool]:
    results: tables.Results = {}
    notes: list[str] = []
    failed = False
    managers: list[str] = []
    for manager in args.managers:
        reason = _unavailable(manager)
        if reason:
            say(f"{manager}: skipped, {reason}")
            notes.append(f"{manager} skipped: {reason}")
        else:
            managers.append(manager)
    largest = args.sizes[-1]
    for n in args.sizes:
        samples = args.samples_large if n >= _LARGE else args.samples
        for manager in managers:
            opts = Options(
                idle=args.idle,
                samples=samples,
                storm=min(args.storm, n),
                storm_rounds=args.storm_rounds,
                settle=0.5 if args.quick else 2.0,
                marker=str(run_dir),
            )
            root = Path(tempfile.mkdtemp(prefix=f"{manager}-{n}-", dir=run_dir))
            say(f"{manager}, N={n} ({_load()}, {samples} respawn samples)")
            runner: Callable[..., dict[str, float]] = {
                "eyried": lambda *a, **k: run_eyried(*a, **k, notes=notes),
                "supervisord": run_supervisord,
                "systemd": run_systemd,
            }[manager]
            try:
                results.setdefault(manager, {})[n] = runner(root, n, watcher, opts, storm=n == largest)
            except (RuntimeError, OSError, AssertionError) as exc:
                failed = True
                say(f"    could not measure: {exc}")
                traceback.print_exc(file=sys.stderr)
                notes.append(f"{manager} at N={n} not measured: {exc}")
            finally:
                left = procs.kill_marked(str(root))
                if left:
                    say(f"    ended {len(left)} leftover processes of this run")
        _print_size(results, n, [m for m in managers if m in results])
    return results, notes, failed


def _print_size(results: tables.Results, n: int, managers: list[str]) -> None:
    if not managers:
        return
    say(f"\nN = {n} ({_load()})\n")
    for line in tables.size_table(results, n, managers):
        say(line)
    say("")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, _terminate)
    procs.raise_nofile()
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {_load()}")
    watcher = ExecWatcher()
    say(
        "exec times: the kernel's proc connector (CLOCK_MONOTONIC)"
        if watcher.kernel_clock
        else f"exec times: {watcher.unavailable}"
    )
    run_dir = Path(tempfile.mkdtemp(prefix="eyrie-compare-"))
    started = time.monotonic()
    try:
        results, notes, failed = _measure_all(args, run_dir, watcher)
        managers = [m for m in args.managers if m in results]
        say(f"\nGrowth ({_load()})\n")
        for line in tables.growth_table(results, args.sizes, managers):
            say(line)
        say(f"\nFloors of this machine ({_load()})\n")
        for line in tables.floors_table(measure.floors(5 if args.quick else 20)):
            say(line)
        if watcher.overflows:
            notes.append(f"the proc connector dropped events {watcher.overflows} times (socket buffer full)")
        for note in notes:
            say(f"note: {note}")
        say(f"\nfinished in {time.monotonic() - started:.0f} s ({_load()})")
        return 1 if failed or not results else 0
    finally:
        watcher.close()
        procs.kill_marked(str(run_dir))
        release_claims(str(run_dir))
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
