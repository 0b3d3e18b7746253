"""The sandboxed ``systemd --user`` harness: a real manager that boots, reboots, and leaves the machine be."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.systemd import MARKER_DIR, UserManager, tracking_hierarchies, user_manager

pytestmark = pytest.mark.systemd

SLEEPER = """\
[Unit]
Description=sandbox sleeper

[Service]
Type=simple
ExecStart=/bin/sleep infinity

[Install]
WantedBy=default.target
"""


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        yield running


def _cgroup_dirs(name: str) -> list[Path]:
    return [h / name for h in tracking_hierarchies() if (h / name).exists()]


class TestUserManager:
    def test_manager_answers_in_its_private_cgroup(self, manager: UserManager) -> None:
        """The manager is up, confined to /<unique>/init.scope, with private XDG dirs and a boot id file."""
        assert manager.systemctl("is-system-running", check=False).stdout.strip() in ("running", "degraded")
        cgroup = Path(f"/proc/{manager.pid}/cgroup").read_text()
        for line in cgroup.splitlines():
            hierarchy = line.split(":", 2)
            if hierarchy[1] in ("", "name=systemd"):
                assert hierarchy[2] == f"/{manager.cgroup_name}/init.scope"
        runtime = Path(manager.env["XDG_RUNTIME_DIR"])
        assert runtime.stat().st_mode & 0o777 == 0o700
        assert manager.unit_dir == Path(manager.env["XDG_CONFIG_HOME"]) / "systemd" / "user"
        assert manager.env["EYRIE_BOOT_ID_FILE"] == str(manager.boot_id_file)
        environment = manager.systemctl("show-environment").stdout
        assert f"EYRIE_BOOT_ID_FILE={manager.boot_id_file}" in environment.splitlines()

    def test_enabled_unit_survives_reboot_and_disabled_does_not(self, manager: UserManager) -> None:
        """An enabled unit comes back after reboot() with a new pid; a started-but-disabled one does not."""
        manager.write_unit("keeper.service", SLEEPER)
        manager.write_unit("passer.service", SLEEPER)
        manager.systemctl("daemon-reload")
        manager.systemctl("enable", "--now", "keeper.service")
        manager.systemctl("start", "passer.service")
        keeper_pid = manager.main_pid("keeper.service")
        passer_pid = manager.main_pid("passer.service")
        assert keeper_pid and passer_pid
        assert {keeper_pid, passer_pid} <= manager.cgroup_pids()
        old_manager = manager.pid

        manager.reboot()

        assert manager.pid != old_manager
        new_pid = manager.wait_until(lambda: manager.main_pid("keeper.service"), what="keeper to start again")
        assert new_pid != keeper_pid
        assert manager.is_active("keeper.service") == "active"
        assert manager.is_active("passer.service") == "inactive"
        for pid in (keeper_pid, passer_pid):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)

    def test_reboot_with_new_boot_id(self, manager: UserManager) -> None:
        """reboot(new_boot_id=True) writes a new uuid into EYRIE_BOOT_ID_FILE; a plain reboot keeps it."""
        first = manager.boot_id
        manager.reboot()
        assert manager.boot_id == first
        manager.reboot(new_boot_id=True)
        assert manager.boot_id != first
        assert len(manager.boot_id) == 36

    def test_reboot_kills_what_outlives_the_manager(self, manager: UserManager) -> None:
        """A KillMode=none leftover is killed at reboot (power off) and reported."""
        manager.write_unit(
            "stubborn.service",
            SLEEPER.replace("[Service]\n", "[Service]\nKillMode=none\n").replace("Type=simple", "Type=exec"),
        )
        manager.systemctl("daemon-reload")
        manager.systemctl("start", "stubborn.service")
        pid = manager.main_pid("stubborn.service")
        killed = manager.reboot()
        assert pid in killed
        assert pid not in manager.cgroup_pids()

    def test_teardown_leaves_nothing(self, tmp_path: Path) -> None:
        """After the block: manager and units gone, cgroup and runtime dirs removed, marker as before."""
        marker_existed = MARKER_DIR.exists()
        with user_manager(tmp_path) as manager:
            manager.write_unit("keeper.service", SLEEPER)
            manager.systemctl("daemon-reload")
            manager.systemctl("start", "keeper.service")
            pids = manager.cgroup_pids()
            name = manager.cgroup_name
            runtime = Path(manager.env["XDG_RUNTIME_DIR"])
            assert _cgroup_dirs(name)
        assert _cgroup_dirs(name) == []
        assert not runtime.exists()
        assert MARKER_DIR.exists() == marker_existed
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
