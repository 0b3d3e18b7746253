"""install / uninstall against a real, sandboxed systemd --user manager."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.frameworks.registry import builtin_frameworks
from supervisor.paths import Home
from supervisor.systemd.doctor import run_checks
from supervisor.systemd.install import STATE_FILE, Step, default_eyried_path, install, uninstall
from supervisor.systemd.names import unit_name
from supervisor.systemd.unit import STOP_MARGIN
from tests.sandbox.systemd import UserManager, user_manager

pytestmark = pytest.mark.systemd

PROGRAM = Path(__file__).parent / "sandbox" / "notify_program.py"

REAL_FLEET = """\
version: 1
defaults:
  restart: {policy: on-failure, initial_delay: 100ms, max_retries: 3}
  health: {interval: 1s, timeout: 1s, failure_threshold: 3, start_timeout: 15s}
  stop_timeout: 5s
instances:
  - name: solo
    framework: embedded
"""

# logind is not running on every test machine; this program keeps its linger state in files instead.
LOGINCTL = """\
#!/bin/sh
state="$(dirname "$0")/linger"
echo "$*" >> "$(dirname "$0")/calls"
case "$1" in
  show-user) if [ -e "$state/$2" ]; then echo yes; else echo no; fi ;;
  enable-linger) mkdir -p "$state" && touch "$state/$2" ;;
  disable-linger) rm -f "$state/$2" ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        yield running


def _unit(tmp_path: Path, manager: UserManager) -> str:
    """The unit of the test's home, ``tmp_path/eyrie``: not the default home, so ``eyried@….service``."""
    return unit_name(tmp_path / "eyrie", manager.env)


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """An eyried that speaks sd_notify (READY, watchdog, SIGHUP, SIGTERM) and records each start."""
    exe = tmp_path / "bin" / "eyried"
    exe.parent.mkdir()
    record = tmp_path / "starts.jsonl"
    exe.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(PROGRAM))}"
        f' --record {shlex.quote(str(record))} -- "$@"\n'
    )
    exe.chmod(0o755)
    return exe


def _by_name(steps: list[Step]) -> dict[str, Step]:
    return {step.name: step for step in steps}


def _loginctl(tmp_path: Path, manager: UserManager) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "logind"
    bin_dir.mkdir()
    (bin_dir / "loginctl").write_text(LOGINCTL)
    (bin_dir / "loginctl").chmod(0o755)
    return {**manager.env, "PATH": f"{bin_dir}:{manager.env['PATH']}"}, bin_dir


class TestInstall:
    def test_install_without_start(self, manager: UserManager, tmp_path: Path, stand_in: Path) -> None:
        """The unit is written, loaded and enabled, not started; a missing logind is a warning, no failure."""
        unit = _unit(tmp_path, manager)
        home = tmp_path / "eyrie"
        steps = install(home=home, eyried_path=stand_in, start=False, env=manager.env)
        assert all(step.ok for step in steps), steps
        named = _by_name(steps)
        assert list(named) == ["unit", "daemon-reload", "enable", "linger"]
        assert named["unit"].detail == f"wrote {manager.unit_dir / unit}"
        assert named["linger"].warning
        assert "sudo loginctl enable-linger" in named["linger"].detail
        assert (manager.unit_dir / unit).stat().st_mode & 0o777 == 0o644
        longest = max(spec.stop_timeout for spec in builtin_frameworks().values())  # no fleet file yet
        timeout_line = f"TimeoutStopSec={math.ceil(longest + STOP_MARGIN)}s"
        assert timeout_line in (manager.unit_dir / unit).read_text().splitlines()
        assert manager.systemctl("is-enabled", unit).stdout.strip() == "enabled"
        assert manager.is_active(unit) == "inactive"
        assert manager.show(unit, "FragmentPath") == str(manager.unit_dir / unit)
        state = json.loads((Home(home).run_dir / STATE_FILE).read_text())
        assert state == {
            "unit": str(manager.unit_dir / unit),
            "linger_enabled_by_install": False,
        }

    def test_second_install_changes_nothing(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """Re-running install reports the unit unchanged, skips the reload and leaves the file untouched."""
        unit = _unit(tmp_path, manager)
        home = tmp_path / "eyrie"
        install(home=home, eyried_path=stand_in, start=False, linger=False, env=manager.env)
        before = (manager.unit_dir / unit).stat()
        named = _by_name(install(home=home, eyried_path=stand_in, start=False, linger=False, env=manager.env))
        assert named["unit"].detail.startswith("unchanged")
        assert named["daemon-reload"].detail == "not needed"
        assert named["enable"].detail == "already enabled"
        assert named["linger"].detail == "skipped (--no-linger)"
        after = (manager.unit_dir / unit).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    def test_dry_run_touches_nothing(self, manager: UserManager, tmp_path: Path, stand_in: Path) -> None:
        """--dry-run says what it would do and writes no file, enables nothing."""
        unit = _unit(tmp_path, manager)
        steps = install(home=tmp_path / "eyrie", eyried_path=stand_in, dry_run=True, env=manager.env)
        assert steps[0].detail.split()[:2] == ["would", "write"]
        assert all(step.ok for step in steps)
        assert not (manager.unit_dir / unit).exists()
        assert manager.systemctl("is-enabled", unit, check=False).stdout.strip() != "enabled"

    def test_start_then_restart_on_change_then_uninstall(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """install starts the service; a changed unit restarts it; uninstall stops, disables, removes it."""
        unit = _unit(tmp_path, manager)
        home = tmp_path / "eyrie"
        steps = install(home=home, eyried_path=stand_in, linger=False, env=manager.env)
        assert all(step.ok for step in steps), steps
        assert manager.is_active(unit) == "active"
        first = manager.main_pid(unit)

        again = _by_name(install(home=home, eyried_path=stand_in, linger=False, env=manager.env))
        assert again["enable"].detail == "already enabled; already running"
        assert manager.main_pid(unit) == first

        changed = _by_name(
            install(home=home, eyried_path=stand_in, stop_timeout=99, linger=False, env=manager.env)
        )
        assert changed["unit"].detail.startswith("updated")
        assert changed["restart"].ok
        assert manager.show(unit, "TimeoutStopUSec") == "1min 54s"
        assert manager.main_pid(unit) not in (None, first)

        other = manager.unit_dir / "unrelated.service"
        other.write_text("[Service]\nExecStart=/bin/true\n")
        removed = _by_name(uninstall(home=home, env=manager.env))
        assert all(step.ok for step in removed.values()), removed
        assert [removed[n].detail for n in ("stop", "disable")] == ["stopped", "disabled"]
        assert removed["linger"].detail.startswith("left as it was")
        assert not (manager.unit_dir / unit).exists()
        assert other.exists()
        assert not (Home(home).run_dir / STATE_FILE).exists()
        assert manager.show(unit, "LoadState") == "not-found"
        starts = [json.loads(line) for line in (tmp_path / "starts.jsonl").read_text().splitlines()]
        assert len(starts) == 2
        assert all(start["argv"][-2:] == ["--home", str(home)] for start in starts)

    def test_uninstall_leaves_a_unit_it_did_not_write(self, manager: UserManager, tmp_path: Path) -> None:
        """A hand-written eyried.service without the marker line is reported and left in place."""
        unit = _unit(tmp_path, manager)
        foreign = manager.write_unit(unit, "[Service]\nExecStart=/bin/true\n")
        named = _by_name(uninstall(home=tmp_path / "eyrie", env=manager.env))
        assert not named["unit"].ok
        assert "not written by eyriectl install" in named["unit"].detail
        assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"

    def test_linger_enabled_by_install_is_disabled_by_uninstall(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """Linger that install turned on is turned off again by uninstall, and recorded in between."""
        env, bin_dir = _loginctl(tmp_path, manager)
        home = tmp_path / "eyrie"
        named = _by_name(install(home=home, eyried_path=stand_in, start=False, env=env))
        assert named["linger"].ok and not named["linger"].warning
        assert named["linger"].detail.startswith("enabled for")
        assert json.loads((Home(home).run_dir / STATE_FILE).read_text())["linger_enabled_by_install"] is True
        assert list((bin_dir / "linger").iterdir())

        removed = _by_name(uninstall(home=home, env=env))
        assert removed["linger"].detail.startswith("disabled for")
        assert not list((bin_dir / "linger").iterdir())

    def test_linger_enabled_before_install_stays(
        self, manager: UserManager, tmp_path: Path, stand_in: Path
    ) -> None:
        """Linger that was on before install is reported as such and survives uninstall."""
        env, bin_dir = _loginctl(tmp_path, manager)
        user = env["USER"]
        subprocess.run(["loginctl", "enable-linger", user], env=env, check=True)
        home = tmp_path / "eyrie"
        named = _by_name(install(home=home, eyried_path=stand_in, start=False, env=env))
        assert named["linger"].detail == f"already enabled for {user}"
        removed = _by_name(uninstall(home=home, env=env))
        assert removed["linger"].detail.startswith("left as it was")
        assert (bin_dir / "linger" / user).exists()
        assert "disable-linger" not in (bin_dir / "calls").read_text()


class TestWithoutManager:
    def test_unreachable_manager_fails_with_a_hint(self, tmp_path: Path, stand_in: Path) -> None:
        """With no user manager to talk to, install stops at the reload and says what is missing."""
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
        steps = install(home=tmp_path / "eyrie", eyried_path=stand_in, start=False, linger=False, env=env)
        assert [(s.name, s.ok) for s in steps] == [("unit", True), ("daemon-reload", False)]
        assert "is a systemd user manager running for this user?" in steps[-1].detail

    def test_bad_home_is_a_failed_step(self, tmp_path: Path, stand_in: Path) -> None:
        """A home with a newline never reaches a unit file: the first step fails and nothing is written."""
        env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"}
        steps = install(home=tmp_path / "a\nb", eyried_path=stand_in, env=env)
        assert [(s.name, s.ok) for s in steps] == [("unit", False)]
        assert "control character" in steps[0].detail
        assert not (tmp_path / "config").exists()


def _eyried_works() -> bool:
    try:
        return (
            subprocess.run([str(default_eyried_path()), "--help"], capture_output=True, timeout=30).returncode
            == 0
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def _instances(home: Path) -> list[dict[str, object]]:
    found = []
    for path in (home / "instances").glob("*/instance.json"):
        with contextlib.suppress(ValueError, FileNotFoundError):
            found.append(json.loads(path.read_text()))
    return found


@pytest.mark.skipif(not _eyried_works(), reason="eyried --help does not run in this checkout")
class TestRealDaemon:
    def test_install_starts_the_fleet_and_uninstall_stops_it(
        self, manager: UserManager, tmp_path: Path
    ) -> None:
        """The real eyried starts under the unit (READY=1) and runs its fleet; uninstall stops the tree."""
        unit = _unit(tmp_path, manager)
        home = tmp_path / "eyrie"
        home.mkdir()
        (home / "fleet.yaml").write_text(REAL_FLEET)
        steps = install(home=home, linger=False, env=manager.env)
        assert all(step.ok for step in steps), steps
        assert manager.is_active(unit) == "active"
        (solo,) = manager.wait_until(
            lambda: [i for i in _instances(home) if i.get("status") == "running" and i.get("pid")],
            timeout=30,
            what="the instance to run",
        )
        pid = int(str(solo["pid"]))
        assert pid in manager.cgroup_pids()
        (daemon,) = [check for check in run_checks(home, manager.env) if check.name == "daemon"]
        assert daemon.ok, daemon

        removed = _by_name(uninstall(home=home, env=manager.env))
        assert removed["stop"].detail == "stopped"
        assert manager.cgroup_pids() == {manager.pid}
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
