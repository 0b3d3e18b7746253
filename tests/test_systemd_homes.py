"""One unit per home: names by systemd-escape rules, and install, uninstall, doctor and migrate across two
homes on one real, sandboxed systemd --user manager, including a home an older release installed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.errors import UnitValueError
from supervisor.systemd.doctor import run_checks
from supervisor.systemd.install import Step, install, uninstall
from supervisor.systemd.names import escape_path, unit_name
from supervisor.systemd.unit import UNIT_NAME, render_unit, served_home
from tests._cli import eyriectl
from tests.sandbox.systemd import UserManager, user_manager

PROGRAM = Path(__file__).parent / "sandbox" / "notify_program.py"

PATHS = [
    "/",
    "/srv/agents",
    "/srv//agents/",
    "/home/ann/.eyrie",
    "/.hidden/x",
    "/tmp/pytest-of-root/pytest-7/test_a0/eyrie",
    "/srv/with space/und-strich/%percent/$dollar/back\\slash",
    "/srv/ünïcode/日本",
    "/srv/a:b_c.d",
]


class TestNames:
    @pytest.mark.skipif(shutil.which("systemd-escape") is None, reason="systemd-escape is not installed")
    @pytest.mark.parametrize("path", PATHS)
    def test_escape_matches_systemd_escape(self, path: str) -> None:
        """The home's part of the unit name is exactly what ``systemd-escape --path`` prints."""
        done = subprocess.run(["systemd-escape", "--path", path], capture_output=True, text=True, check=True)
        assert escape_path(path) == done.stdout.strip()

    def test_default_home_keeps_eyried_service(self, tmp_path: Path) -> None:
        """``~/.eyrie`` is ``eyried.service``; any other home gets its own instance name."""
        env = {"HOME": str(tmp_path)}
        assert unit_name(tmp_path / ".eyrie", env) == UNIT_NAME
        assert unit_name(tmp_path / ".eyrie/", env) == UNIT_NAME
        assert unit_name(Path("/srv/agents"), env) == "eyried@srv-agents.service"

    def test_too_long_a_home_is_refused(self) -> None:
        """A home whose escaped name passes systemd's 255 characters is a clear error, not a bad unit."""
        with pytest.raises(UnitValueError, match="too long for a unit name"):
            unit_name(Path("/" + "-" * 100), {"HOME": "/root"})

    def test_served_home_reads_back_what_render_wrote(self) -> None:
        """The ``--home`` of a rendered unit is read back exactly, whatever it holds."""
        for path in PATHS[1:]:
            text = render_unit(eyried=Path("/usr/bin/eyried"), home=Path(path), stop_timeout=30)
            assert served_home(text) == Path(path)
        assert served_home("[Service]\nExecStart=/bin/eyried --home /x\n") is None


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        yield running


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """An eyried that speaks sd_notify and holds its home's daemon lock, as eyried does."""
    exe = tmp_path / "bin" / "eyried"
    exe.parent.mkdir()
    exe.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(PROGRAM))}"
        f' --record {shlex.quote(str(tmp_path / "starts.jsonl"))} -- "$@"\n'
    )
    exe.chmod(0o755)
    return exe


def _ok(steps: list[Step]) -> list[Step]:
    assert all(step.ok for step in steps), steps
    return steps


def _legacy(manager: UserManager, home: Path, stand_in: Path, *, start: bool) -> Path:
    """``eyried.service`` for ``home``, as the release before one unit per home installed it."""
    text = render_unit(eyried=stand_in, home=home, stop_timeout=30)
    path = manager.write_unit(UNIT_NAME, text)
    manager.systemctl("daemon-reload")
    manager.systemctl("enable", *(["--now"] if start else []), UNIT_NAME)
    return path


@pytest.mark.systemd
class TestTwoHomes:
    def test_second_install_leaves_the_first_alone(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """The default home and another each run their own unit; installing the second touches nothing
        of the first, and uninstalling either leaves the other running."""
        first, second = manager.home / ".eyrie", tmp_path / "second"
        first_unit, second_unit = unit_name(first, manager.env), unit_name(second, manager.env)
        assert first_unit == UNIT_NAME and second_unit.startswith("eyried@")
        _ok(install(home=first, eyried_path=stand_in, linger=False, env=manager.env))
        first_text = (manager.unit_dir / first_unit).read_text()
        first_pid = manager.main_pid(first_unit)

        _ok(install(home=second, eyried_path=stand_in, linger=False, env=manager.env))
        assert (manager.unit_dir / first_unit).read_text() == first_text
        assert manager.main_pid(first_unit) == first_pid
        assert manager.is_active(first_unit) == manager.is_active(second_unit) == "active"
        assert manager.main_pid(second_unit) not in (None, first_pid)
        assert served_home((manager.unit_dir / second_unit).read_text()) == second

        for home, pid in ((first, first_pid), (second, manager.main_pid(second_unit))):
            named = {check.name: check for check in run_checks(home, manager.env, eyried_path=stand_in)}
            assert named["unit"].ok and named["enabled"].ok, named
            assert named["daemon"].ok and f"pid {pid}" in named["daemon"].detail, named["daemon"]

        _ok(uninstall(home=second, env=manager.env))
        assert not (manager.unit_dir / second_unit).exists()
        assert manager.is_active(first_unit) == "active" and manager.main_pid(first_unit) == first_pid
        _ok(uninstall(home=first, env=manager.env))
        assert not (manager.unit_dir / first_unit).exists()


@pytest.mark.systemd
class TestOlderReleaseUnit:
    def test_install_moves_a_home_off_eyried_service(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """A non-default home running as ``eyried.service``: doctor says so; install moves it to its own
        unit, running and enabled, and ``eyried.service`` is gone."""
        home = tmp_path / "agents"
        legacy = _legacy(manager, home, stand_in, start=True)
        named = {check.name: check for check in run_checks(home, manager.env, eyried_path=stand_in)}
        assert not named["unit"].ok and "an older release" in named["unit"].detail
        assert "eyriectl migrate" in named["unit"].fix

        steps = _ok(install(home=home, eyried_path=stand_in, linger=False, env=manager.env))
        assert [step.name for step in steps][:2] == ["legacy", "unit"]
        name = unit_name(home, manager.env)
        assert not legacy.exists() and manager.show(UNIT_NAME, "LoadState") == "not-found"
        assert manager.is_active(name) == "active"
        assert manager.systemctl("is-enabled", name).stdout.strip() == "enabled"
        named = {check.name: check for check in run_checks(home, manager.env, eyried_path=stand_in)}
        assert named["unit"].ok and named["daemon"].ok, named

    def test_migrate_moves_it_while_the_daemon_is_stopped(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """``eyriectl migrate`` gives the home its own unit, enabled as the old one was, and says how to
        start it."""
        home = tmp_path / "agents"
        home.mkdir()
        legacy = _legacy(manager, home, stand_in, start=False)
        done = eyriectl(home, "migrate", env=manager.env)
        assert done.returncode == 0, done.stderr
        name = unit_name(home, manager.env)
        assert not legacy.exists() and (manager.unit_dir / name).exists()
        assert manager.systemctl("is-enabled", name).stdout.strip() == "enabled"
        assert f"systemctl --user start {shlex.quote(name)}" in done.stderr
        again = eyriectl(home, "migrate", env=manager.env)
        assert again.returncode == 0 and "unit" not in again.stderr

    def test_default_home_does_not_take_over_another_homes_unit(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """While ``eyried.service`` still serves another home, installing or uninstalling the default home
        leaves it running and names the command that frees it."""
        other = tmp_path / "agents"
        legacy = _legacy(manager, other, stand_in, start=True)
        text, pid = legacy.read_text(), manager.main_pid(UNIT_NAME)
        default = manager.home / ".eyrie"
        refused = install(home=default, eyried_path=stand_in, linger=False, env=manager.env)
        assert [step.ok for step in refused] == [False]
        assert f"eyriectl --home {other} migrate" in refused[0].detail
        left = uninstall(home=default, env=manager.env)
        assert [step.ok for step in left] == [False] and "left alone" in left[0].detail
        named = {check.name: check for check in run_checks(default, manager.env, eyried_path=stand_in)}
        assert not named["unit"].ok and named["unit"].fix.startswith(f"eyriectl --home {other} migrate")
        assert legacy.read_text() == text and manager.main_pid(UNIT_NAME) == pid
