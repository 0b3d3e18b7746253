"""doctor: each check against a real sandboxed user manager, and a fix for everything that fails."""

from __future__ import annotations

import shlex
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.port_claims import CLAIMS_DIR_VAR, ClaimRegistry, PortOwner
from supervisor.ports import PORT_RANGE_END, PORT_RANGE_START
from supervisor.systemd.doctor import Check, run_checks
from supervisor.systemd.install import install
from supervisor.systemd.names import unit_name
from tests.sandbox.systemd import UserManager, user_manager

pytestmark = pytest.mark.systemd

PROGRAM = Path(__file__).parent / "sandbox" / "notify_program.py"

FLEET = """\
version: 1
defaults:
  stop_timeout: 5s
frameworks:
  picoclaw:
    command: [sleep, "1000"]
instances:
  - name: alpha
    framework: embedded
  - name: beta
    framework: zeroclaw
  - name: gamma
    framework: picoclaw
    stop_timeout: 42s
"""


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A directory on the manager's PATH only, holding a zeroclaw program."""
    directory = tmp_path / "tools"
    directory.mkdir()
    (directory / "zeroclaw").write_text("#!/bin/sh\nexit 0\n")
    (directory / "zeroclaw").chmod(0o755)
    return directory


@pytest.fixture
def manager(tmp_path: Path, tools: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        running.systemctl("set-environment", f"PATH={tools}:{running.env['PATH']}")
        yield running


def _unit(tmp_path: Path, manager: UserManager) -> str:
    """The unit of the test's home, ``tmp_path/eyrie``: not the default home, so ``eyried@….service``."""
    return unit_name(tmp_path / "eyrie", manager.env)


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """An eyried that speaks sd_notify and holds the home's daemon lock, as eyried does."""
    exe = tmp_path / "bin" / "eyried"
    exe.parent.mkdir()
    exe.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(PROGRAM))}"
        f' --record {shlex.quote(str(tmp_path / "starts.jsonl"))} -- "$@"\n'
    )
    exe.chmod(0o755)
    return exe


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


class TestDoctor:
    def test_nothing_installed(self, manager: UserManager, tmp_path: Path, stand_in: Path) -> None:
        """A reachable manager passes; missing unit, daemon, fleet file and linger fail, each with a fix."""
        checks = run_checks(tmp_path / "eyrie", manager.env, eyried_path=stand_in)
        named = _by_name(checks)
        assert named["systemd"].ok
        assert not named["linger"].ok
        assert "loginctl enable-linger" in named["linger"].fix
        assert not named["unit"].ok and named["unit"].fix == "eyriectl install"
        assert not named["daemon"].ok
        assert named["fleet"].fix == "eyriectl init"
        assert named["ports"].ok
        assert all(check.fix for check in checks if not check.ok)

    def test_installed_and_running(self, manager: UserManager, tmp_path: Path, stand_in: Path) -> None:
        """After install: unit current, enabled, daemon running under systemd, programs found on its PATH."""
        unit = _unit(tmp_path, manager)
        home = tmp_path / "eyrie"
        home.mkdir()
        (home / "fleet.yaml").write_text(FLEET)
        assert all(
            step.ok for step in install(home=home, eyried_path=stand_in, linger=False, env=manager.env)
        )
        named = _by_name(run_checks(home, manager.env, eyried_path=stand_in))
        assert named["unit"].ok, named["unit"]
        assert named["enabled"].ok
        assert named["daemon"].ok, named["daemon"]
        assert f"pid {manager.main_pid(unit)}" in named["daemon"].detail
        assert named["framework embedded"].ok
        assert named["framework picoclaw"].ok
        assert named["framework zeroclaw"].ok, "found on the manager's PATH, not the caller's"
        assert "tools/zeroclaw" in named["framework zeroclaw"].detail

    def test_stale_unit_and_missing_program(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """A unit rendered before the fleet changed is flagged with the differing line; a lost program too."""
        home = tmp_path / "eyrie"
        install(home=home, eyried_path=stand_in, start=False, linger=False, env=manager.env)
        home.mkdir(exist_ok=True)
        (home / "fleet.yaml").write_text(FLEET.replace("framework: zeroclaw", "framework: hermes"))
        named = _by_name(run_checks(home, manager.env, eyried_path=stand_in))
        assert not named["unit"].ok
        assert "TimeoutStopSec=57s" in named["unit"].detail
        assert named["unit"].fix == "eyriectl install"
        assert not named["framework hermes"].ok
        assert "'hermes' not found on the user manager's PATH" in named["framework hermes"].detail
        assert "frameworks.hermes.command" in named["framework hermes"].fix
        assert not named["daemon"].ok
        assert "systemctl --user start" in named["daemon"].fix

    def test_another_homes_service_is_not_this_ones(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """Another home's running service does not pass for this home's: its own unit is missing."""
        other = tmp_path / "other"
        install(home=other, eyried_path=stand_in, linger=False, env=manager.env)
        named = _by_name(run_checks(tmp_path / "eyrie", manager.env, eyried_path=stand_in))
        assert not named["unit"].ok and named["unit"].fix == "eyriectl install"
        assert not named["daemon"].ok
        assert manager.is_active(unit_name(other, manager.env)) == "active"

    def test_invalid_fleet_file(self, manager: UserManager, tmp_path: Path, stand_in: Path) -> None:
        """A broken fleet file is reported with its error and how to apply the fix."""
        home = tmp_path / "eyrie"
        home.mkdir()
        (home / "fleet.yaml").write_text("version: 1\ninstances:\n  - name: Bad Name\n")
        named = _by_name(run_checks(home, manager.env, eyried_path=stand_in))
        assert not named["fleet"].ok
        assert "fleet.yaml" in named["fleet"].detail
        assert "eyriectl reload" in named["fleet"].fix

    def test_ports_held_by_strangers_are_counted(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """A socket listening in the instance range counts against the free ports."""
        with socket.socket() as sock:
            for port in range(PORT_RANGE_END, PORT_RANGE_START, -1):
                try:
                    sock.bind(("127.0.0.1", port))
                    break
                except OSError:
                    continue
            sock.listen()
            named = _by_name(run_checks(tmp_path / "eyrie", manager.env, eyried_path=stand_in))
        held = int(named["ports"].detail.split(", ")[-1].split()[0])
        assert held >= 1
        assert named["ports"].ok


class TestWithoutManager:
    def test_unreachable_manager(self, tmp_path: Path, stand_in: Path) -> None:
        """With no user manager, the systemd check fails with what to do, and nothing crashes."""
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}
        named = _by_name(run_checks(tmp_path / "eyrie", env, eyried_path=stand_in))
        assert not named["systemd"].ok
        assert "XDG_RUNTIME_DIR" in named["systemd"].fix
        assert "enabled" not in named
        assert not named["daemon"].ok


class TestPortClaims:
    @staticmethod
    def _checks(tmp_path: Path, stand_in: Path) -> dict[str, Check]:
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}
        return _by_name(run_checks(tmp_path / "eyrie", env, eyried_path=stand_in))

    def test_unusable_claims_directory_says_what_to_do(
        self, tmp_path: Path, stand_in: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file where the claims directory goes fails the check; the fix is chmod 1777 or the setting."""
        (tmp_path / "claims").write_text("")
        monkeypatch.setenv(CLAIMS_DIR_VAR, str(tmp_path / "claims"))
        check = self._checks(tmp_path, stand_in)["port claims"]
        assert not check.ok and "not a directory" in check.detail
        assert "chmod 1777" in check.fix and CLAIMS_DIR_VAR in check.fix

    def test_claims_of_other_homes_count_against_the_range(
        self, tmp_path: Path, stand_in: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ports another home claims are counted as taken in the fleet file's own range."""
        monkeypatch.setenv(CLAIMS_DIR_VAR, str(tmp_path / "claims"))
        (tmp_path / "eyrie").mkdir()
        (tmp_path / "eyrie" / "fleet.yaml").write_text(
            "version: 1\ndaemon:\n  ports: {first: 44100, last: 44119}\ninstances: []\n"
        )
        other = tmp_path / "other"
        registry = ClaimRegistry()
        for port in (44100, 44101, 45000):
            registry.claim(port, PortOwner.of(other, other / "instances" / f"i{port}", f"i{port}"))
        named = self._checks(tmp_path, stand_in)
        claims = named["port claims"]
        assert claims.ok and "0 ports claimed by this home, 3 by others" in claims.detail
        assert named["ports"].detail.startswith("18 of 20 ports free in 44100-44119")
