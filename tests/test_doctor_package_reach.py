"""``doctor``'s package reach check: a home inside the directory eyrie is imported from is reported."""

from __future__ import annotations

from pathlib import Path

import supervisor
from supervisor.systemd._package_check import package_reach_check
from supervisor.systemd.doctor import run_checks

IMPORTED_FROM = Path(supervisor.__file__).resolve().parent.parent


def test_a_home_outside_passes(tmp_path: Path) -> None:
    check = package_reach_check(tmp_path / "eyrie")
    assert check.ok
    assert str(IMPORTED_FROM) in check.detail


def test_a_home_inside_fails_with_a_fix() -> None:
    home = IMPORTED_FROM / ".eyrie-demo"  # never created: the check only compares paths
    check = package_reach_check(home)
    assert not check.ok
    assert str(home) in check.detail and "embedded" in check.detail
    assert "move the home" in check.fix


def test_a_symlink_into_the_package_directory_is_followed(tmp_path: Path) -> None:
    link = tmp_path / "home"
    link.symlink_to(IMPORTED_FROM)
    assert not package_reach_check(link / "eyrie").ok


def test_doctor_runs_it(tmp_path: Path) -> None:
    names = [check.name for check in run_checks(tmp_path / "eyrie", {"PATH": "/usr/bin:/bin"})]
    assert "package reach" in names
