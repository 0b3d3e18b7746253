"""eyriectl install / uninstall / doctor / daemon restart against a real, sandboxed systemd --user manager
(tests/sandbox/systemd.py: skipped where it cannot run), with the real eyried as the service."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from supervisor.systemd.names import unit_name
from tests._cli import eyriectl
from tests._daemon import embedded, fleet_yaml, pid_alive
from tests.sandbox.systemd import UserManager, user_manager

pytestmark = pytest.mark.systemd

# logind does not run everywhere: these stand-ins keep linger state in files (or refuse to change it).
LOGINCTL = """\
#!/bin/sh
state="$(dirname "$0")/linger"
case "$1" in
  show-user) if [ -e "$state/$2" ]; then echo yes; else echo no; fi ;;
  enable-linger) mkdir -p "$state" && touch "$state/$2" ;;
  disable-linger) rm -f "$state/$2" ;;
  *) exit 1 ;;
esac
"""
LOGINCTL_REFUSING = """\
#!/bin/sh
case "$1" in
  show-user) echo no ;;
  *) echo "Could not enable linger: Access denied" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    with user_manager(tmp_path) as running:
        yield running


def _unit(tmp_path: Path, manager: UserManager) -> str:
    """The unit of the test's home, ``tmp_path/eyrie``: not the default home, so ``eyried@….service``."""
    return unit_name(tmp_path / "eyrie", manager.env)


def _with_loginctl(tmp_path: Path, manager: UserManager, script: str) -> dict[str, str]:
    bin_dir = tmp_path / "logind"
    bin_dir.mkdir()
    (bin_dir / "loginctl").write_text(script)
    (bin_dir / "loginctl").chmod(0o755)
    return {**manager.env, "PATH": f"{bin_dir}:{manager.env['PATH']}"}


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "eyrie"
    home.mkdir()
    (home / "fleet.yaml").write_text(fleet_yaml(embedded("solo")))
    return home


def _lines(stdout: str) -> dict[str, str]:
    """``✓ name  detail`` lines by name → ``"✓ detail"``."""
    found = {}
    for line in stdout.splitlines():
        if line[:2] in ("✓ ", "✗ ", "! "):
            name, _, detail = line[2:].partition(" ")
            found[name] = f"{line[0]} {detail.strip()}"
    return found


def _run(home: Path, env: Mapping[str, str], *args: str) -> tuple[int, dict[str, str], str]:
    result = eyriectl(home, *args, env=env, timeout=120)
    return result.returncode, _lines(result.stdout), result.stdout + result.stderr


class TestInstallWithoutStart:
    def test_dry_run_install_doctor_uninstall(self, manager: UserManager, tmp_path: Path) -> None:
        """--dry-run changes nothing, --no-start only enables, doctor names fixes, uninstall undoes it."""
        name = _unit(tmp_path, manager)
        home, unit = _home(tmp_path), manager.unit_dir / name
        env = _with_loginctl(tmp_path, manager, LOGINCTL_REFUSING)

        code, steps, out = _run(home, env, "install", "--dry-run")
        assert code == 0 and steps["unit"] == f"✓ would write {unit}", out
        assert not unit.exists()

        code, steps, out = _run(home, env, "install", "--no-start")
        assert code == 0, out
        assert (
            steps["unit"] == f"✓ wrote {unit}"
            and steps["enable"] == "✓ enabled: starts with the user manager"
        )
        assert (
            steps["linger"].startswith("! could not enable linger") and "sudo loginctl enable-linger" in out
        )
        assert manager.systemctl("is-enabled", name).stdout.strip() == "enabled"
        assert manager.is_active(name) == "inactive"

        code, steps, out = _run(home, env, "install", "--no-start", "--no-linger")
        assert code == 0 and steps["unit"] == f"✓ unchanged: {unit}", out
        assert steps["linger"] == "✓ skipped (--no-linger)"

        code, checks, out = _run(home, env, "doctor")
        assert code == 1 and "checks failed" in out, out
        assert checks["unit"].startswith("✓") and checks["enabled"].startswith("✓")
        assert checks["daemon"].startswith("✗") and f"fix: systemctl --user start {shlex.quote(name)}" in out
        assert checks["linger"].startswith("✗") and "fix: sudo loginctl enable-linger" in out
        report = json.loads(eyriectl(home, "doctor", "--json", env=env).stdout)
        assert {c["name"]: c["ok"] for c in report}["daemon"] is False

        code, steps, out = _run(home, env, "uninstall")
        assert code == 0 and steps["unit"] == f"✓ removed {unit}" and steps["disable"] == "✓ disabled", out
        assert not unit.exists()
        assert manager.show(name, "LoadState") == "not-found"


class TestInstalledService:
    def test_install_doctor_daemon_restart_uninstall(self, manager: UserManager, tmp_path: Path) -> None:
        """install runs the fleet, doctor is clean, daemon restart keeps every pid, uninstall stops it all."""
        unit = _unit(tmp_path, manager)
        home = _home(tmp_path)
        env = _with_loginctl(tmp_path, manager, LOGINCTL)

        code, steps, out = _run(home, env, "install")
        assert code == 0 and all(step.startswith("✓") for step in steps.values()), out
        assert steps["linger"].startswith("✓ enabled for")
        assert manager.is_active(unit) == "active"
        daemon_pid = manager.main_pid(unit)
        solo = manager.wait_until(lambda: _running(home), timeout=30, what="solo to run under the service")

        code, checks, out = _run(home, env, "doctor")
        assert code == 0, out
        assert all(line.startswith("✓") for line in checks.values()), checks
        assert checks["daemon"] == f"✓ eyried is running under systemd (pid {daemon_pid}) for {home}"

        code, _, out = _run(home, env, "daemon", "restart", "--timeout", "60")
        assert code == 0 and f"pid {daemon_pid}" in out and "same pid: 1 of 1" in out, out
        assert manager.main_pid(unit) == daemon_pid and manager.is_active(unit) == "active"
        assert _running(home) == solo and manager.show(unit, "NRestarts") == "0"

        code, steps, out = _run(home, env, "uninstall")
        assert code == 0, out
        assert steps["stop"] == "✓ stopped" and steps["linger"].startswith("✓ disabled for")
        assert not pid_alive(solo) and not (manager.unit_dir / unit).exists()


def _running(home: Path) -> int | None:
    """solo's pid once it is recorded running."""
    try:
        (path,) = (home / "instances").glob("*/instance.json")
        inst = json.loads(path.read_text())
    except (ValueError, FileNotFoundError):
        return None
    return inst["pid"] if inst.get("status") == "running" and pid_alive(inst.get("pid")) else None
