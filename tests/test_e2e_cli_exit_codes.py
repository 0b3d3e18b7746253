"""The exit codes of docs/cli.md, command by command, through the real eyriectl: 0 success, 1 failure,
2 usage error, 3 eyried is not running, 4 degraded (``status``: an instance meant to run is not running,
or the last reload was rejected)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._cli import eyriectl, eyriectl_many
from tests._daemon import DaemonProcess, embedded, fleet_yaml, wait_for

GOOD = fleet_yaml(embedded("alpha"))
BROKEN = fleet_yaml(embedded("alpha"), embedded("broken", 'command: ["false"]\nrestart: {policy: never}'))
INVALID = "version: 1\ninstances: [this is not a list of instances\n"

DAEMON_DOWN = [
    ["ps"],
    ["list"],
    ["status"],
    ["status", "--json"],
    ["reload"],
    ["reload", "--dry-run"],
    ["events"],
    ["start", "alpha"],
    ["stop", "alpha"],
    ["restart", "alpha"],
    ["daemon", "restart"],
]
USAGE = [
    ["no-such-command"],
    ["ps", "--no-such-option"],
    ["status", "alpha", "beta"],
    ["events", "-n", "-1"],
    ["reload", "extra"],
    ["trash", "empty", "--older-than", "soon"],
]


def _codes(home: Path, calls: list[list[str]]) -> dict[str, int]:
    return {" ".join(args): r.returncode for args, r in zip(calls, eyriectl_many(home, calls), strict=True)}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path)
    daemon.write_fleet(GOOD)
    try:
        daemon.start()
        daemon.wait_serving()
        daemon.wait_running("alpha")
        yield daemon
    finally:
        daemon.close()


class TestWithoutDaemon:
    def test_commands_that_need_eyried_exit_3(self, tmp_path: Path) -> None:
        """Every command that talks to eyried exits 3 when none runs (ps and reload --dry-run after
        printing what is on disk)."""
        (tmp_path / "fleet.yaml").write_text(GOOD)
        codes = _codes(tmp_path, DAEMON_DOWN)
        assert codes == {" ".join(args): 3 for args in DAEMON_DOWN}

    def test_fleet_edits_work_offline_and_exit_0(self, tmp_path: Path) -> None:
        """init, add, enable and disable edit fleet.yaml without eyried and exit 0."""
        assert eyriectl(tmp_path, "init").returncode == 0
        assert eyriectl(tmp_path, "add", "gamma", "--framework", "embedded").returncode == 0
        assert _codes(tmp_path, [["disable", "gamma"], ["projects"], ["trash"]]) == {
            "disable gamma": 0,
            "projects": 0,
            "trash": 0,
        }
        assert eyriectl(tmp_path, "enable", "gamma").returncode == 0

    def test_usage_errors_exit_2(self, tmp_path: Path) -> None:
        """An unknown command or option, or a bad argument, exits 2 before anything runs."""
        codes = _codes(tmp_path, USAGE)
        assert codes == {" ".join(args): 2 for args in USAGE}


class TestWithDaemon:
    def test_success_exits_0(self, daemon: DaemonProcess) -> None:
        """ps, list, status (all running, last reload applied), reload and events exit 0."""
        calls = [["ps"], ["list", "--json"], ["reload"], ["events"], ["status"], ["status", "--json"]]
        assert set(_codes(daemon.home, calls).values()) == {0}

    def test_failures_exit_1(self, daemon: DaemonProcess) -> None:
        """A command that fails says why on stderr and exits 1: an unknown instance, a real migrate while
        eyried runs, an entry not in the trash, a rejected reload."""
        calls = [["start", "nosuch"], ["logs", "nosuch"], ["migrate"], ["trash", "restore", "nosuch"]]
        results = eyriectl_many(daemon.home, calls)
        for result in results:
            assert result.returncode == 1, result
            assert "eyriectl: " in result.stderr
        daemon.write_fleet(INVALID)
        assert eyriectl(daemon.home, "reload").returncode == 1

    def test_status_exits_4_while_an_instance_meant_to_run_is_not(self, daemon: DaemonProcess) -> None:
        """An instance in error makes status exit 4, naming it (text and --json); once it is gone, 0."""
        daemon.write_fleet(BROKEN)
        assert eyriectl(daemon.home, "reload").returncode == 0
        daemon.wait_status("broken", "error")
        text, as_json = eyriectl_many(daemon.home, [["status"], ["status", "--json"]])
        assert (text.returncode, as_json.returncode) == (4, 4)
        assert "degraded:\n  - broken is error" in text.stdout
        assert '"broken is error' in as_json.stdout
        daemon.write_fleet(GOOD)
        assert eyriectl(daemon.home, "reload").returncode == 0
        wait_for(lambda: eyriectl(daemon.home, "status").returncode == 0, what="status to exit 0")

    def test_status_exits_4_after_a_rejected_reload(self, daemon: DaemonProcess) -> None:
        """A rejected reload leaves the daemon on its previous fleet: status says so and exits 4 until a
        reload applies."""
        daemon.write_fleet(INVALID)
        assert eyriectl(daemon.home, "reload").returncode == 1
        result = eyriectl(daemon.home, "status")
        assert result.returncode == 4 and "the last reload was rejected" in result.stdout
        daemon.write_fleet(GOOD)
        assert eyriectl(daemon.home, "reload").returncode == 0
        assert eyriectl(daemon.home, "status").returncode == 0
