"""Crash → respawned, in kernel time: SIGKILL of an agent to the exec of its replacement.

A real ``eyried`` runs N sleeper instances (``sleep infinity``, readiness and liveness ``process``,
``restart: {policy: always, initial_delay: 0}``); each sample SIGKILLs one instance's child and reads the
kernel's process events (the proc connector: a netlink socket, root only) until a new child of the daemon
execs. Its timestamp is the kernel's CLOCK_MONOTONIC, the same clock as the kill's, so neither this
process's wake-up nor the daemon's event stream is in the figure. Also printed: kill → the process's exit
(the kernel's floor) and exec → ``running`` seen on the event stream (the record written and announced). A
child exec'd through a trampoline (``prlimit``) counts at its second exec, the agent's.

    .venv/bin/python bench/respawn_bench.py --sizes 200 --samples 100           # confined (the default)
    .venv/bin/python bench/respawn_bench.py --sizes 200 --samples 100 --unconfined

``--initial-delay 10ms`` measures a tree whose restart delay has a 10 ms floor (the figure then includes it).
The daemon is stopped in a ``finally`` (Ctrl-C included); its fleet uses ports 49000–50999
(``EYRIE_BENCH_PORTS=FIRST-LAST`` moves them).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

import anyio
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._scratch import scratch_dir
from bench.daemon_bench import Bench, pct, say
from supervisor.client import ControlClient

_NETLINK_CONNECTOR = 11
_CN_IDX_PROC = 1
_CN_VAL_PROC = 1
_PROC_CN_MCAST_LISTEN = 1
_PROC_EVENT_EXEC = 0x2
_PROC_EVENT_EXIT = 0x80000000
_NLMSG_DONE = 3
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_CN_MSG = struct.Struct("=IIIIHH")  # cn_msg: idx, val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # proc_event: what, cpu, timestamp_ns (CLOCK_MONOTONIC)
_PIDS = struct.Struct("=II")  # process_pid, process_tgid


def fleet_text(n: int, *, confined: bool, initial_delay: str) -> str:
    sandbox = "" if confined else "    sandbox: off\n"
    first, _, last = os.environ.get("EYRIE_BENCH_PORTS", "49000-50999").partition("-")
    return (
        "version: 1\n"
        f"daemon:\n  ports: {{first: {first}, last: {last}}}\n"
        "defaults:\n"
        f"  restart: {{policy: always, initial_delay: {initial_delay}, factor: 1, max_delay: 1s, jitter: 0,"
        " max_retries: 100000}\n"
        "  health: {interval: 10s, timeout: 3s, failure_threshold: 3, start_timeout: 30s}\n"
        "  stop_timeout: 5s\n"
        "frameworks:\n"
        "  embedded:\n"
        "    command: [sleep, infinity]\n"
        "    ready: {kind: process, seconds: 0}\n"
        "    live: {kind: process, seconds: 0}\n"
        f"{sandbox}instances:\n" + "".join(f"  - name: sleeper-{i:04d}\n" for i in range(n))
    )


class ProcEvents:
    """The kernel's exec and exit events of every process, with their CLOCK_MONOTONIC timestamps."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_CONNECTOR)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((os.getpid(), _CN_IDX_PROC))
        op = struct.pack("=I", _PROC_CN_MCAST_LISTEN)
        cn = _CN_MSG.pack(_CN_IDX_PROC, _CN_VAL_PROC, 0, 0, len(op), 0) + op
        self.sock.send(_HEADER.pack(_HEADER.size + len(cn), _NLMSG_DONE, 0, 0, os.getpid()) + cn)

    def drain(self) -> None:
        self.sock.setblocking(False)
        while True:
            try:
                self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: events were dropped, and the queue starts over
                continue
        self.sock.setblocking(True)

    def next_event(self, deadline: float) -> tuple[int, int, int] | None:
        """(what, pid, timestamp ns) of the next exec or exit event; None past ``deadline``."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:  # ENOBUFS: events were dropped while the machine was busy
                continue
            at = _HEADER.size + _CN_MSG.size
            what, _cpu, stamp = _EVENT.unpack_from(data, at)
            if what in (_PROC_EVENT_EXEC, _PROC_EVENT_EXIT):
                _pid, tgid = _PIDS.unpack_from(data, at + _EVENT.size)
                return what, tgid, stamp

    def close(self) -> None:
        self.sock.close()


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def sample(events: ProcEvents, daemon: int, victim: int) -> tuple[float, float, int] | None:
    """SIGKILL ``victim``; (kill → exit ms, kill → new child's exec ms, its pid), None if none within 5 s."""
    events.drain()
    killed = time.monotonic_ns()
    os.kill(victim, signal.SIGKILL)
    exited = None
    deadline = time.monotonic() + 5
    while (event := events.next_event(deadline)) is not None:
        what, pid, stamp = event
        if what == _PROC_EVENT_EXIT and pid == victim:
            exited = stamp
        elif what == _PROC_EVENT_EXEC and parent_of(pid) == daemon:
            gone = (exited - killed) / 1e6 if exited is not None else float("nan")
            return gone, (last_exec(events, pid, stamp) - killed) / 1e6, pid
    return None


def last_exec(events: ProcEvents, pid: int, stamp: int) -> int:
    """The timestamp of the agent's exec: a program started through a trampoline (``prlimit``) execs twice,
    and the second is the agent's. Its event is queued by the time ``/proc/<pid>/exe`` names the agent."""
    deadline = time.monotonic() + 5
    while True:
        try:
            through = os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "prlimit"
        except OSError:
            through = False
        event = events.next_event(deadline if through else min(deadline, time.monotonic() + 0.0005))
        if event is None:
            return stamp
        if event[0] == _PROC_EVENT_EXEC and event[1] == pid:
            stamp = event[2]


async def run_size(n: int, samples: int, confined: bool, initial_delay: str) -> None:
    with scratch_dir(prefix=f"eyrie-respawn-bench-{n}-") as tmp:
        bench = Bench(Path(tmp), n)
        fleet = fleet_text(n, confined=confined, initial_delay=initial_delay)
        (bench.home.root / "fleet.yaml").write_text(fleet)
        events = ProcEvents()
        try:
            await bench.wait_all_running(bench.start_daemon())
            await anyio.sleep(2.0)  # the start-up's deferred sweeps and writes finish first
            assert bench.proc is not None
            pids = await bench.pids()
            names = sorted(pids)
            to_exec: list[float] = []
            to_exit: list[float] = []
            to_event: list[float] = []
            missed = 0
            load = os.getloadavg()[0]
            daemon = psutil.Process(bench.proc.pid)
            cpu_before = sum(daemon.cpu_times()[:2])
            window = time.monotonic()
            async with ControlClient(bench.home) as client, client.events() as stream:
                for i in range(samples):
                    name = names[i % len(names)]
                    got = sample(events, bench.proc.pid, pids[name])
                    if got is None:
                        missed += 1
                        pids = await bench.pids()
                        continue
                    gone, execd, pid = got
                    execd_at = time.monotonic()
                    to_exit.append(gone)
                    to_exec.append(execd)
                    with anyio.move_on_after(5):
                        async for event in stream:
                            if event.instance == name and event.to_status == "running" and event.pid == pid:
                                to_event.append((time.monotonic() - execd_at) * 1000)
                                break
                    pids[name] = pid
                    await anyio.sleep(0.03)
            cpu = (sum(daemon.cpu_times()[:2]) - cpu_before) * 1000 / max(len(to_exec), 1)
            say(f"  samples taken from monotonic {window:.3f} to {time.monotonic():.3f} s (bench.gc_pauses)")
            how = "confined" if confined else "sandbox: off"
            say(
                f"N={n} {how}, initial_delay {initial_delay}, {len(to_exec)} samples"
                f"{f', {missed} missed' if missed else ''}, "
                f"load average {load:.2f} → {os.getloadavg()[0]:.2f}"
            )
            if to_exec:
                say(
                    f"  kill → new child exec'd: p50 {statistics.median(to_exec):.2f} ms, "
                    f"p95 {pct(to_exec, 0.95):.2f} ms, max {max(to_exec):.2f} ms"
                )
                say(f"  kill → old child exited (floor): p50 {statistics.median(to_exit):.2f} ms")
                say(f"  daemon CPU per respawn (event stream included): {cpu:.2f} ms")
            if to_event:
                say(
                    "  exec → `running` on the event stream (seen here): "
                    f"p50 {statistics.median(to_event):.2f} ms, "
                    f"p95 {pct(to_event, 0.95):.2f} ms"
                )
        except BaseException:
            err = bench.home.root / "eyried.err"
            say(err.read_text()[-3000:] if err.exists() else "(no daemon output)")
            raise
        finally:
            events.close()
            if bench.proc is not None and bench.proc.poll() is None:
                bench.stop_daemon()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--unconfined", action="store_true", help="run the sleepers with sandbox: off")
    parser.add_argument("--initial-delay", default="0", help="restart.initial_delay (default 0)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the proc connector needs root")
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for n in args.sizes:
        anyio.run(run_size, n, args.samples, not args.unconfined, args.initial_delay)


if __name__ == "__main__":
    main()
