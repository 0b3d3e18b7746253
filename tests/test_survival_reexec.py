"""eyried re-executing itself in place (SIGUSR2, the upgrade path), in the foreground as a plain process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests._daemon import DaemonProcess, embedded, kill_quietly, pid_alive, running_daemon, wait_for
from tests._survival import (
    NAMES,
    fd_targets,
    gone,
    instances,
    survival_fleet,
    three_embedded,
)


def _readies(d: DaemonProcess) -> int:
    return d.log().count('"event": "daemon_ready"')


def _reexec(d: DaemonProcess) -> None:
    """SIGUSR2, then wait until the new image says it is ready."""
    before = _readies(d)
    d.signal(signal.SIGUSR2)
    wait_for(lambda: _readies(d) > before, 30, "the re-executed eyried to be ready")


def _adopted(home: Path, pids: dict[str, int]) -> dict[str, dict[str, Any]]:
    found = instances(home)
    ok = all(
        found.get(n, {}).get("status") == "running"
        and found[n].get("pid") == pid
        and found[n].get("status_detail") == f"adopted pid {pid}"
        for n, pid in pids.items()
    )
    return found if ok else {}


def _lasting_fds(pid: int, home: Path) -> Counter[str]:
    """The descriptors the daemon holds for good: pidfds, epolls, the daemon lock, agent log files."""
    kinds: Counter[str] = Counter()
    for target in fd_targets(pid):
        if target == "anon_inode:[pidfd]":
            kinds["pidfd"] += 1
        elif target == "anon_inode:[eventpoll]":
            kinds["epoll"] += 1
        elif target == str(home / "run" / "eyried.lock"):
            kinds["lock"] += 1
        elif target.endswith(".log"):
            kinds["log"] += 1
    return kinds


def _blocked(pid: int, sig: signal.Signals) -> bool:
    """Whether ``pid``'s main thread blocks ``sig`` right now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


class TestReexecInPlace:
    def test_same_pid_and_every_agent_adopted(self, tmp_path: Path) -> None:
        """SIGUSR2: the daemon keeps its pid and command line; every agent keeps its pid, with no restart."""
        with running_daemon(tmp_path, three_embedded()) as d:
            assert d.proc is not None
            pids = d.wait_running(*NAMES)
            before = instances(tmp_path)
            cmdline = psutil.Process(d.proc.pid).cmdline()
            _reexec(d)
            after = wait_for(lambda: _adopted(tmp_path, pids), 20, "every agent adopted")
            assert d.proc.poll() is None
            assert psutil.Process(d.proc.pid).cmdline() == cmdline
            for name, pid in pids.items():
                assert pid_alive(pid)
                assert after[name]["restart_count"] == before[name]["restart_count"]
                assert after[name]["total_restarts"] == before[name]["total_restarts"]
                assert after[name]["proc_start_time"] == before[name]["proc_start_time"]
            assert (tmp_path / "run" / "eyried.pid").read_text().strip() == str(d.proc.pid)

    def test_no_descriptor_crosses_the_exec(self, tmp_path: Path) -> None:
        """After each re-exec the daemon holds only what the new image opened: nothing leaks across exec."""
        # Per agent a pidfd of the engine and one of the reaper (a log is held only for the turn that writes
        # eyried's "adopted" line); the event loop's epoll and the reaper's; the daemon lock.
        expected = Counter(pidfd=2 * len(NAMES), epoll=2, lock=1)
        with running_daemon(tmp_path, three_embedded()) as d:
            assert d.proc is not None
            pid = d.proc.pid
            pids = d.wait_running(*NAMES)
            for _ in range(2):
                _reexec(d)
                try:
                    wait_for(lambda: _lasting_fds(pid, tmp_path) == expected, 10, "the expected descriptors")
                except AssertionError:
                    assert _lasting_fds(pid, tmp_path) == expected
                wait_for(lambda: _adopted(tmp_path, pids), 20, "every agent adopted")

    def test_adopted_agent_that_exits_is_reaped_and_restarted(self, tmp_path: Path) -> None:
        """An agent the old image spawned that dies after the re-exec is reaped (no zombie), restarted."""
        with running_daemon(tmp_path, three_embedded()) as d:
            pids = d.wait_running(*NAMES)
            _reexec(d)
            counted = wait_for(lambda: _adopted(tmp_path, pids), 20, "every agent adopted")["alpha"]
            kill_quietly(pids["alpha"])
            renewed = d.wait_new_pid("alpha", pids["alpha"])
            assert renewed["restart_count"] >= counted["restart_count"] + 1  # more if its port was taken
            assert renewed["last_exit"]["signal"] == signal.SIGKILL
            wait_for(lambda: gone(pids["alpha"]), 10, "the old agent to be reaped")
            assert instances(tmp_path)["beta"]["pid"] == pids["beta"]

    def test_agent_dying_during_the_exec_is_reaped_and_restarted(self, tmp_path: Path) -> None:
        """An agent that dies while the image is replaced is collected (how it died recorded), restarted."""
        with running_daemon(tmp_path, three_embedded()) as d:
            pids = d.wait_running(*NAMES)
            d.signal(signal.SIGUSR2)
            wait_for(lambda: '"event": "daemon_stopped"' in d.log(), 20, "the old image to let go")
            counted = instances(tmp_path)["beta"]
            kill_quietly(pids["beta"])
            renewed = d.wait_new_pid("beta", pids["beta"])
            assert renewed["restart_count"] >= counted["restart_count"] + 1  # more if its port was taken
            assert gone(pids["beta"])
            wait_for(
                lambda: _adopted(tmp_path, {n: pids[n] for n in ("alpha", "gamma")}), 20, "others adopted"
            )
            assert renewed["last_exit"]["signal"] == signal.SIGKILL

    def test_child_no_instance_claims_is_reaped_when_it_ends(self, tmp_path: Path) -> None:
        """An agent of an instance no fleet declares (dropped from the file, and no fleet applied kept, as in
        a home of a release before `run/fleet.applied.json`: an ORPHAN) is nobody's to adopt; it runs on,
        and when it ends the daemon reaps it: no zombie."""
        with running_daemon(tmp_path, three_embedded()) as d:
            pids = d.wait_running(*NAMES)
            d.write_fleet(survival_fleet(embedded("alpha"), embedded("beta")))
            (tmp_path / "run" / "fleet.applied.json").unlink()
            _reexec(d)
            wait_for(lambda: _adopted(tmp_path, {n: pids[n] for n in ("alpha", "beta")}), 20, "both adopted")
            assert pid_alive(pids["gamma"])
            kill_quietly(pids["gamma"])
            wait_for(lambda: gone(pids["gamma"]), 10, "the orphan to be reaped")
            assert (
                f'"pid": {pids["gamma"]}, "exit": "killed by SIGKILL", "event": "inherited_child_reaped"'
                in d.log()
            )

    @pytest.mark.parametrize("moment", ["while the old image detaches", "while the new image starts"])
    def test_stop_request_during_the_exec_is_kept(self, tmp_path: Path, moment: str) -> None:
        """SIGTERM sent while eyried re-executes is not lost: the new image stops the fleet, exits 0."""
        with running_daemon(tmp_path, three_embedded()) as d:
            assert d.proc is not None
            pid = d.proc.pid
            pids = d.wait_running(*NAMES)
            d.signal(signal.SIGUSR2)
            if moment == "while the old image detaches":
                wait_for(lambda: '"event": "daemon_reexec"' in d.log(), 20, "the re-exec to begin")
            else:  # blocked from the end of the old image until the new one's handlers are in place
                wait_for(lambda: _blocked(pid, signal.SIGTERM), 20, "SIGTERM blocked across the exec")
                assert (tmp_path / "run" / "eyried.pid").read_text().strip() == str(pid)
            d.signal(signal.SIGTERM)
            assert d.proc.wait(60) == 0
            assert _readies(d) == 2
            for name, agent in pids.items():
                assert gone(agent)
                assert instances(tmp_path)[name]["status"] == "stopped"
                assert instances(tmp_path)[name]["desired"] == "running"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        yield sock, path


def _messages_until(sock: socket.socket, *wanted: str) -> list[str]:
    """Notification lines received until every line in ``wanted`` has come."""
    lines: list[str] = []
    while not set(wanted) <= set(lines):
        lines += sock.recv(4096).decode().splitlines()
    return lines


class TestNotifications:
    def test_reloading_then_ready_and_never_stopping(
        self, tmp_path: Path, notify_socket: tuple[socket.socket, Path]
    ) -> None:
        """Around a re-exec: RELOADING=1, then READY=1 from the new image; STOPPING=1 only on SIGTERM."""
        sock, path = notify_socket
        d = DaemonProcess(tmp_path)
        d.write_fleet(three_embedded())
        env = {**os.environ, "EYRIE_HOME": str(tmp_path), "NOTIFY_SOCKET": str(path)}
        try:
            with open(d.output, "ab") as out:
                d.proc = subprocess.Popen(
                    [sys.executable, "-m", "supervisor.daemon", "--home", str(tmp_path)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            started = _messages_until(sock, "READY=1", "STATUS=3 running, 0 backoff, 0 error")
            pids = d.wait_running(*NAMES)
            d.signal(signal.SIGUSR2)
            around = _messages_until(sock, "READY=1", "STATUS=3 running, 0 backoff, 0 error")
            assert around[:3] == [
                "RELOADING=1",
                around[1],
                "STATUS=re-executing in place; the agents keep running",
            ]
            assert around[1].startswith("MONOTONIC_USEC=")
            assert "STOPPING=1" not in started + around
            wait_for(lambda: _adopted(tmp_path, pids), 20, "every agent adopted")
            d.signal(signal.SIGTERM)
            assert "STOPPING=1" in _messages_until(sock, "STOPPING=1")
            assert d.proc.wait(60) == 0
        finally:
            d.close()
