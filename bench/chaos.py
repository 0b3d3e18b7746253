"""Chaos soak: a real eyried and N misbehaving agents under seeded random faults, invariants checked from
/proc and the home's files after every wave.

Each wave fires one to three faults (SIGKILL of agents, their groups and the daemon; SIGUSR2; SIGHUP storms
with fleet edits, also while the daemon is down or re-executing; eyriectl stop/start; port squatters), waits
with a deadline for the fleet to converge, and reports what did not, each violation (kind and instance) the
first time it is seen: later waves settle around what was already reported. The same seed and agent count
replay the same faults. Exit status 1 on any violation.

    .venv/bin/python -m bench.chaos --duration 300 --agents 12
    .venv/bin/python -m bench.chaos --seed 1234 --waves 20 --keep-home
    .venv/bin/python -m bench.chaos --ci
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType

from bench._chaos.actions import Actions, Daemon
from bench._chaos.invariants import Checker, Expected, Violation
from bench._chaos.plan import FaultKind, Planner
from bench._chaos.procs import end_all, snapshot
from bench._chaos.settle import settle
from bench._scratch import release_claims

_SLOW = 5.0
"""A settle longer than this many seconds prints (with -v) what was wrong until the end."""


def _fault_kinds(text: str) -> frozenset[FaultKind]:
    try:
        kinds = frozenset(FaultKind(k.strip()) for k in text.split(",") if k.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not kinds:
        raise argparse.ArgumentTypeError("name at least one fault kind")
    return kinds


def _replay(args: argparse.Namespace) -> str:
    """The command line that replays this run's faults."""
    line = f"python -m bench.chaos --seed {args.seed} --agents {args.agents}"
    if args.faults != frozenset(FaultKind):
        line += " --faults " + ",".join(sorted(k.value for k in args.faults))
    return line


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=None, help="replay this seed (default: a random one, printed)")
    p.add_argument("--duration", type=float, default=300.0, help="seconds of waves (default 300)")
    p.add_argument("--agents", type=int, default=12, help="instances declared at the start (default 12)")
    p.add_argument("--waves", type=int, default=None, help="stop after this many waves")
    p.add_argument(
        "--faults",
        type=_fault_kinds,
        default=frozenset(FaultKind),
        help="comma-separated fault kinds to draw from (default all: "
        + ",".join(k.value for k in FaultKind)
        + ")",
    )
    p.add_argument("--settle-timeout", type=float, default=30.0, help="seconds a wave may take to converge")
    p.add_argument("--ci", action="store_true", help="the CI preset: --duration 60 --agents 8")
    p.add_argument(
        "--keep-home", action="store_true", help="keep the temporary home (logs, files) at the end"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every wave and every note")
    args = p.parse_args(argv)
    if args.ci:
        args.duration, args.agents = 60.0, 8
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    return args


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def _counts(counter: Counter[str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "none"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Soak:
    """One run: its home, daemon, planner, checker, and the tallies the summary prints."""

    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        self.args = args
        self.home = home
        self.daemon = Daemon(home)
        self.planner = Planner(args.seed, args.agents, args.faults)
        self.actions = Actions(home, self.daemon)
        self.checker = Checker(home, str(home))
        self.settle_times: list[float] = []
        self.violations: Counter[str] = Counter()
        self.known: set[tuple[str, str]] = set()
        self.checks = 0
        self.waves = 0

    def expected(self) -> Expected:
        agents = self.planner.model.agents
        self.actions.stopped &= set(agents)
        return Expected({n: a.env for n, a in agents.items()}, frozenset(self.actions.stopped))

    def wave(self, number: int, faults: str) -> None:
        settled = settle(self.checker, self.expected(), self.args.settle_timeout, self.known)
        self.checks += settled.checks
        violations = settled.violations
        if self.args.verbose:
            for note in self.actions.notes:
                print(f"  note: {note}", flush=True)
            outcome = (
                f"settled in {settled.seconds:.2f} s" if not violations else f"{len(violations)} violations"
            )
            print(f"wave {number}: {faults} → {outcome}", flush=True)
            if not violations and settled.seconds > _SLOW:
                for v in settled.last_seen:
                    print(f"  slow: last seen {v}", flush=True)
        self.actions.notes.clear()
        if not violations:
            self.settle_times.append(settled.seconds)
            return
        for v in violations:
            self.violations[v.kind] += 1
            self.known.add(v.key)
            print(f"VIOLATION wave {number} seed {self.args.seed} [{faults}]: {v}", flush=True)
        self._recover(violations)

    def _recover(self, violations: list[Violation]) -> None:
        """End the processes found wrong and bring a daemon back: the next wave starts from known ground."""
        ours = snapshot(str(self.home))
        for v in violations:
            if v.pid in ours:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(v.pid, signal.SIGKILL)
        if self.daemon.ensure() and self.args.verbose:
            print("  recovery: started a new eyried", flush=True)

    def run(self) -> None:
        (self.home / "fleet.yaml").write_text(self.planner.initial_text())
        self.daemon.start()
        self.wave(0, "start")
        deadline = time.monotonic() + self.args.duration
        while time.monotonic() < deadline and (self.args.waves is None or self.waves < self.args.waves):
            self.waves += 1
            faults = self.planner.next_wave()
            for fault in faults:
                self.actions.fire(fault)
            self.wave(self.waves, "; ".join(map(str, faults)))
            self.actions.end_squatters()

    def summary(self, seconds: float) -> str:
        return (
            f"chaos: seed {self.args.seed}, {self.args.agents} agents, "
            f"{self.waves} waves in {seconds:.0f} s; "
            f"faults {_counts(self.actions.faults)}; edits {_counts(self.actions.edits)}; "
            f"invariant checks {self.checks}; distinct violations {sum(self.violations.values())}"
            f" ({_counts(self.violations)}); settle p50 {statistics.median(self.settle_times or [0]):.2f} s"
            f" p95 {_pct(self.settle_times, 0.95):.2f} s over {len(self.settle_times)} converged waves;"
            f" daemon starts {self.daemon.starts}"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    home = Path(tempfile.mkdtemp(prefix="eyrie-chaos-"))
    print(
        f"chaos: seed {args.seed} (replay: python -m bench.chaos --seed {args.seed} --agents {args.agents})"
    )
    print(f"chaos: home {home}", flush=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    soak = Soak(args, home)
    started = time.monotonic()
    interrupted = False
    try:
        soak.run()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        soak.daemon.kill()
        soak.actions.end_squatters()
        left = end_all(str(home))
        if left:
            print(f"chaos: could not end pids {left}", file=sys.stderr)
        if args.keep_home:
            print(f"chaos: home kept at {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
            release_claims(str(home))
    print(soak.summary(time.monotonic() - started) + (" (interrupted)" if interrupted else ""), flush=True)
    return 1 if soak.violations or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
