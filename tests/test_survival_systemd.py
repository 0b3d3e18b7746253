"""eyried under a real (sandboxed) systemd --user: re-exec in place, kill -9, stop and restart, the watchdog.

Each test installs the real daemon with ``install()`` (what ``eyriectl install`` runs) into its own user
manager; the sandbox fails the test if any process outside it changed cgroup.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.systemd.install import default_eyried_path
from tests._daemon import embedded, kill_quietly, pid_alive
from tests._survival import (
    NAMES,
    Installed,
    gone,
    instances,
    survival_fleet,
    three_embedded,
    with_grandchild,
)
from tests.sandbox.systemd import UserManager, user_manager

SUMMARY = "3 running, 0 backoff, 0 error"


def _eyried_works() -> bool:
    try:
        done = subprocess.run([str(default_eyried_path()), "--help"], capture_output=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(not _eyried_works(), reason="eyried --help does not run in this checkout"),
]


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        yield running


def _adopted(svc: Installed, pids: dict[str, int]) -> bool:
    found = instances(svc.home)
    return all(
        found[name].get("pid") == pid and found[name].get("status_detail") == f"adopted pid {pid}"
        for name, pid in pids.items()
    )


def _renewed(svc: Installed, name: str, old: int) -> dict[str, object]:
    inst = instances(svc.home)[name]
    return inst if inst.get("status") == "running" and inst.get("pid") not in (None, old) else {}


class TestReexecUnderSystemd:
    def test_sigusr2_is_no_restart_for_systemd(self, manager: UserManager, tmp_path: Path) -> None:
        """SIGUSR2: same MainPID, the unit stays active (or reloading), NRestarts and agents unchanged."""
        svc = Installed.start(manager, tmp_path, three_embedded())
        before = svc.wait_running(*NAMES)
        main = svc.main_pid
        manager.wait_until(lambda: svc.show("StatusText") == SUMMARY, what="the fleet summary")
        states: set[str] = set()

        def reexecuted() -> bool:
            states.add(svc.show("ActiveState"))
            return svc.readies() == 2 and svc.show("ActiveState") == "active"

        svc.signal_main(signal.SIGUSR2)
        manager.wait_until(reexecuted, timeout=30, what="the re-executed eyried to be ready")
        assert states <= {"active", "reloading"}, states
        assert svc.main_pid == main
        assert svc.restarts == 0
        pids = {name: inst["pid"] for name, inst in before.items()}
        manager.wait_until(lambda: _adopted(svc, pids), what="every agent adopted")
        after = instances(svc.home)
        for name, pid in pids.items():
            assert pid_alive(pid)
            assert after[name]["restart_count"] == before[name]["restart_count"]
        manager.wait_until(lambda: svc.show("StatusText") == SUMMARY, what="the summary after the re-exec")


class TestDaemonCrash:
    def test_kill9_is_restarted_by_systemd_and_adopts(self, manager: UserManager, tmp_path: Path) -> None:
        """kill -9 of eyried: systemd restarts it, live agents are adopted, one killed meanwhile restarted."""
        svc = Installed.start(manager, tmp_path, three_embedded())
        before = svc.wait_running(*NAMES)
        pids = {name: inst["pid"] for name, inst in before.items()}
        old = svc.signal_main(signal.SIGKILL)
        kill_quietly(pids["beta"])  # dies while no daemon runs: KillMode=process left the others alone
        svc.wait_main_pid_other_than(old)
        assert svc.restarts == 1
        kept = {name: pids[name] for name in ("alpha", "gamma")}
        manager.wait_until(lambda: _adopted(svc, kept), what="alpha and gamma adopted")
        beta = manager.wait_until(lambda: _renewed(svc, "beta", pids["beta"]), what="beta running again")
        assert beta["restart_count"] >= before["beta"]["restart_count"] + 1  # more if its port was taken
        after = instances(svc.home)
        for name in kept:
            assert after[name]["restart_count"] == before[name]["restart_count"]
        assert svc.trees() == dict.fromkeys(NAMES, 1)


class TestStopAndRestart:
    def test_stop_ends_every_tree_and_restart_brings_the_fleet_back(
        self, manager: UserManager, tmp_path: Path
    ) -> None:
        """stop: every tree gone (an escaped grandchild too), desired kept; start and restart: new pids."""
        fleet = survival_fleet(embedded("alpha"), embedded("beta"), with_grandchild("gamma"))
        svc = Installed.start(manager, tmp_path, fleet)
        first = {name: inst["pid"] for name, inst in svc.wait_running(*NAMES).items()}
        grandchild_file = (
            svc.home / "instances" / instances(svc.home)["gamma"]["id"] / "state" / "grandchild.pid"
        )
        grandchild = int(manager.wait_until(grandchild_file.read_text, what="the grandchild's pid"))
        assert pid_alive(grandchild)

        manager.systemctl("stop", svc.unit)
        assert manager.is_active(svc.unit) == "inactive"
        assert manager.cgroup_pids() == {manager.pid}
        assert gone(grandchild)
        for name, pid in first.items():
            assert gone(pid)
            inst = instances(svc.home)[name]
            assert (inst["status"], inst["desired"]) == ("stopped", "running")

        manager.systemctl("start", svc.unit)
        second = {name: inst["pid"] for name, inst in svc.wait_running(*NAMES).items()}
        assert set(second.values()).isdisjoint(first.values())

        manager.systemctl("restart", svc.unit)
        third = {name: inst["pid"] for name, inst in svc.wait_running(*NAMES).items()}
        assert set(third.values()).isdisjoint(set(first.values()) | set(second.values()))
        assert svc.trees() == {"alpha": 1, "beta": 1, "gamma": 2}  # gamma's agent and its escaped grandchild
        assert svc.restarts == 0


class TestWatchdog:
    def test_frozen_daemon_is_killed_and_restarted(self, manager: UserManager, tmp_path: Path) -> None:
        """The loop pings WATCHDOG=1; frozen (SIGSTOP), eyried is killed and restarted, agents adopted."""
        svc = Installed.start(manager, tmp_path, three_embedded(), watchdog_sec=2)
        pids = {name: inst["pid"] for name, inst in svc.wait_running(*NAMES).items()}
        assert svc.show("WatchdogUSec") == "2s"
        pinged = int(svc.show("WatchdogTimestampMonotonic"))
        manager.wait_until(
            lambda: int(svc.show("WatchdogTimestampMonotonic")) > pinged, what="a WATCHDOG=1 ping"
        )
        old = svc.signal_main(signal.SIGSTOP)
        try:
            svc.wait_main_pid_other_than(old, timeout=30)
        finally:
            kill_quietly(old, signal.SIGCONT)
        assert svc.restarts == 1
        assert "Fatal Python error: Aborted" in manager.log_tail(200)  # SIGABRT, with the stuck stack
        manager.wait_until(lambda: _adopted(svc, pids), what="every agent adopted")
        manager.wait_until(lambda: svc.show("StatusText") == SUMMARY, what="the fleet summary")
        assert all(pid_alive(pid) for pid in pids.values())
        assert gone(old)
