"""The fleet across a reboot of a real (sandboxed) user manager: enable/disable decide what comes back,
start/stop last until the next boot, and nothing runs twice.

A reboot is ``systemctl --user exit`` and a fresh manager on the same dirs, with a new value in the file
``EYRIE_BOOT_ID_FILE`` names; without a new value it is only a restart of the daemon.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.fleet import set_autostart
from supervisor.systemd.install import default_eyried_path, uninstall
from supervisor.systemd.names import unit_name
from supervisor.systemd.unit import UNIT_NAME
from tests._daemon import embedded, pid_alive
from tests._survival import (
    NAMES,
    Installed,
    gone,
    instances,
    stop_instance,
    survival_fleet,
    three_embedded,
    view,
)
from tests.sandbox.systemd import UserManager, user_manager


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


def _prepared(manager: UserManager, tmp_path: Path) -> tuple[Installed, dict[str, int]]:
    """Three instances running; then beta stopped (for this boot) and gamma disabled (autostart false)."""
    svc = Installed.start(manager, tmp_path, three_embedded())
    pids = {name: inst["pid"] for name, inst in svc.wait_running(*NAMES).items()}
    stopped = stop_instance(svc.home, "beta")
    assert (stopped.status, stopped.desired) == ("stopped", "stopped")
    set_autostart(svc.home / "fleet.yaml", "gamma", False)
    manager.systemctl("reload", svc.unit)  # ExecReload: SIGHUP
    manager.wait_until(lambda: not view(svc.home, "gamma").autostart, what="gamma disabled by the reload")
    assert pid_alive(pids["gamma"])
    return svc, pids


def _state(svc: Installed) -> dict[str, tuple[str, str]]:
    return {name: (inst["status"], inst.get("desired", "")) for name, inst in instances(svc.home).items()}


class TestReboot:
    def test_new_boot_runs_what_is_enabled(self, manager: UserManager, tmp_path: Path) -> None:
        """After a reboot eyried is up by itself; enabled agents run (the stopped one too); disabled: not."""
        svc, pids = _prepared(manager, tmp_path)
        boot = manager.boot_id
        left_over = manager.reboot(new_boot_id=True)
        assert manager.boot_id != boot
        assert left_over == []  # the daemon stopped every tree itself when the manager went down
        assert manager.is_active(svc.unit) == "active"
        assert svc.restarts == 0
        now = svc.wait_running("alpha", "beta")
        assert now["alpha"]["pid"] != pids["alpha"]
        assert now["beta"]["pid"] != pids["beta"]
        gamma = instances(svc.home)["gamma"]
        assert (gamma["status"], gamma["desired"], gamma.get("pid")) == ("stopped", "stopped", None)
        assert gone(pids["gamma"])
        assert svc.trees() == {"alpha": 1, "beta": 1}

    def test_same_boot_keeps_what_was_stopped(self, manager: UserManager, tmp_path: Path) -> None:
        """A daemon restart without a new boot id: the stopped one stays stopped, the disabled one runs on."""
        svc, pids = _prepared(manager, tmp_path)
        manager.reboot(new_boot_id=False)
        assert manager.is_active(svc.unit) == "active"
        now = svc.wait_running("alpha", "gamma")
        assert now["alpha"]["pid"] != pids["alpha"]
        assert now["gamma"]["pid"] != pids["gamma"]
        assert _state(svc)["beta"] == ("stopped", "stopped")
        assert instances(svc.home)["beta"].get("pid") is None
        assert svc.trees() == {"alpha": 1, "gamma": 1}

    def test_power_cut_starts_fresh_never_adopts(self, manager: UserManager, tmp_path: Path) -> None:
        """Power cut (all SIGKILLed), new boot: recorded pids are dead; agents start fresh, not adopted."""
        svc, pids = _prepared(manager, tmp_path)
        recorded = {name: inst.get("pid") for name, inst in instances(svc.home).items()}
        assert recorded == {"alpha": pids["alpha"], "beta": None, "gamma": pids["gamma"]}
        os.kill(manager.pid, signal.SIGKILL)
        killed = manager.reboot(new_boot_id=True)
        assert {pids["alpha"], pids["gamma"]} <= set(killed)
        now = svc.wait_running("alpha", "beta")
        for name in ("alpha", "beta"):
            assert now[name]["pid"] not in pids.values()
            assert now[name]["status_detail"] != f"adopted pid {now[name]['pid']}"
            assert now[name]["boot_id"] == manager.boot_id
        assert _state(svc)["gamma"] == ("stopped", "stopped")
        assert svc.trees() == {"alpha": 1, "beta": 1}


class TestTwoHomes:
    def test_both_homes_come_back_and_each_uninstalls_alone(
        self, manager: UserManager, tmp_path: Path
    ) -> None:
        """The default home and another, each under its own unit, both run their fleets again after a
        reboot; uninstalling one stops its agents and leaves the other's daemon and agents running."""
        first = Installed.start(
            manager, tmp_path, survival_fleet(embedded("alpha")), home=manager.home / ".eyrie"
        )
        first.wait_running("alpha")
        second_fleet = survival_fleet(embedded("beta"))
        second = Installed.start(manager, tmp_path, second_fleet, home=tmp_path / "second")
        assert (first.unit, second.unit) == (UNIT_NAME, unit_name(tmp_path / "second", manager.env))
        before = {"alpha": first.wait_running("alpha")["alpha"]["pid"]}
        before["beta"] = second.wait_running("beta")["beta"]["pid"]

        assert manager.reboot(new_boot_id=True) == []
        assert manager.is_active(first.unit) == manager.is_active(second.unit) == "active"
        alpha = first.wait_running("alpha")["alpha"]
        beta = second.wait_running("beta")["beta"]
        assert alpha["pid"] != before["alpha"] and beta["pid"] != before["beta"]
        assert first.main_pid != second.main_pid

        daemon = first.main_pid
        steps = uninstall(home=second.home, env=manager.env)
        assert all(step.ok for step in steps), steps
        manager.wait_until(lambda: gone(beta["pid"]), what="beta stopped with its home's service")
        assert manager.is_active(first.unit) == "active" and first.main_pid == daemon
        assert pid_alive(alpha["pid"]) and instances(first.home)["alpha"]["pid"] == alpha["pid"]
