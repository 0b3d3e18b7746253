"""The floor of crash → respawned for a Python supervisor, measured as `respawn_bench.py` measures eyried.

A process that does only what a respawn cannot do without: N ``sleep infinity`` children, each watched by a
pidfd on an asyncio loop (``add_reader``); when one becomes readable, the loop's callback reaps the child
(``waitid``), opens its log file to append, and starts the same argv again in a session of its own with the
inherited environment and three variables more, by the C library's ``posix_spawn`` as eyried does
(`supervisor.engine._posix_spawn`: signals at their defaults, stdin from /dev/null, every other descriptor
closed). No record, no event, no port check. ``--held-per-child K`` keeps K more descriptors open per
child (1: a log file per instance, as eyried held until this pass), to show what the descriptors a child
inherits and closes cost.

Each sample SIGKILLs one child and reads the kernel's process events until the replacement execs (the
proc connector, root only), the same samples as `respawn_bench.py`; the loop's CPU from readable to the
spawn call and the spawn call's own time are printed too. The gap between this floor and eyried's figure at
the same N on the same machine is eyried's own code.

    .venv/bin/python bench/respawn_floor.py --sizes 200 1000 --samples 100
    .venv/bin/python bench/respawn_floor.py --sizes 1000 --samples 100 --held-per-child 1

Every child is SIGKILLed and reaped in a ``finally`` (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.daemon_bench import pct, say
from bench.respawn_bench import ProcEvents, sample

__all__ = ["main"]

_ARGV = ["sleep", "infinity"]
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


class _Floor:
    """The respawning loop: children by pidfd, and the loop thread's CPU per respawn."""

    def __init__(self, n: int, held: int, logs: Path) -> None:
        from supervisor.engine._posix_spawn import posix_spawn

        self.spawn_call = posix_spawn
        self.loop = asyncio.get_running_loop()
        self.logs = logs
        self.executable = "/bin/sleep" if os.path.exists("/bin/sleep") else "/usr/bin/sleep"
        self.base_env = dict(os.environ)
        self.held = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) for _ in range(n * held)]
        self.children: dict[int, int] = {}  # pidfd → index
        self.pids: dict[int, int] = {}  # index → pid
        self.stamps: list[tuple[float, float, float]] = []  # readable → call CPU ms, call CPU, call wall
        for index in range(n):
            self.start(index)

    def start(self, index: int) -> tuple[float, float]:
        env = {**self.base_env, "EYRIE_INSTANCE_ID": f"floor-{index}", "EYRIE_PORT": str(55000 + index)}
        log_fd = os.open(self.logs / f"{index}.log", _LOG_FLAGS, 0o600)
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            pid = self.spawn_call(self.executable, _ARGV, env, cwd=str(self.logs), log_fd=log_fd)
        finally:
            spent = (time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000
            os.close(log_fd)
        fd = os.pidfd_open(pid)
        self.children[fd] = index
        self.pids[index] = pid
        self.loop.add_reader(fd, self.ended, fd)
        return spent

    def ended(self, fd: int) -> None:
        began = time.thread_time()
        self.loop.remove_reader(fd)
        os.waitid(os.P_PIDFD, fd, os.WEXITED)
        os.close(fd)
        index = self.children.pop(fd)
        before_call = time.thread_time()
        cpu, wall = self.start(index)
        self.stamps.append(((before_call - began) * 1000, cpu, wall))

    def stop(self) -> None:
        for fd in list(self.children):
            self.loop.remove_reader(fd)
            try:
                os.kill(self.pids[self.children[fd]], signal.SIGKILL)
                os.waitid(os.P_PIDFD, fd, os.WEXITED)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(fd)
        self.children.clear()
        for fd in self.held:
            os.close(fd)


async def _serve(n: int, held: int) -> None:
    """The floor process: start N children, print their pids, respawn until stdin closes, print stamps."""
    with tempfile.TemporaryDirectory(prefix="eyrie-respawn-floor-") as logs:
        floor = _Floor(n, held, Path(logs))
        try:
            print(json.dumps(floor.pids), flush=True)
            reader = asyncio.StreamReader()
            await floor.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            while line := await reader.readline():
                if line.strip() == b"pids":
                    print(json.dumps(floor.pids), flush=True)
        finally:
            floor.stop()
            print(json.dumps(floor.stamps), flush=True)


def _measure(n: int, samples: int, held: int) -> None:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(n), "--held-per-child", str(held)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    events = ProcEvents()
    try:
        pids = {int(k): v for k, v in json.loads(server.stdout.readline()).items()}
        time.sleep(1.0)
        to_exec: list[float] = []
        missed = 0
        load = os.getloadavg()[0]
        for i in range(samples):
            index = i % n
            got = sample(events, server.pid, pids[index])
            if got is None:
                missed += 1
            else:
                to_exec.append(got[1])
                pids[index] = got[2]
            time.sleep(0.03)
        server.stdin.close()
        stamps = json.loads(server.stdout.readlines()[-1])
        say(
            f"floor N={n}, {held} more descriptor(s) held per child, {len(to_exec)} samples"
            f"{f', {missed} missed' if missed else ''}, load average {load:.2f} → {os.getloadavg()[0]:.2f}"
        )
        if to_exec:
            say(
                f"  kill → new child exec'd: p50 {statistics.median(to_exec):.2f} ms, "
                f"p95 {pct(to_exec, 0.95):.2f} ms, max {max(to_exec):.2f} ms"
            )
        for column, label in (
            (0, "readable → spawn call, CPU"),
            (1, "spawn call, CPU"),
            (2, "spawn call, wall"),
        ):
            values = [stamp[column] for stamp in stamps]
            if values:
                say(f"  {label}: p50 {statistics.median(values):.3f} ms, p95 {pct(values, 0.95):.3f} ms")
    finally:
        events.close()
        if server.poll() is None:
            if server.stdin is not None and not server.stdin.closed:
                server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--held-per-child", type=int, default=0, help="descriptors more held per child")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve, args.held_per_child))
        return
    if os.geteuid() != 0:
        sys.exit("the proc connector needs root")
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for n in args.sizes:
        _measure(n, args.samples, args.held_per_child)


if __name__ == "__main__":
    main()
