"""eyriectl start/stop/restart/add wait like systemctl: the state reached is printed, ``--no-block``
returns at once, ``--timeout`` bounds the wait, and a failed start says why (last error, the end of the
log)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._cli import eyriectl, ok, ps
from tests._daemon import FAST_DEFAULTS, DaemonProcess, embedded, running_daemon, wait_for

GHOSTLY = '  ghostly:\n    command: ["/nonexistent/eyrie-test-agent", "{port}"]\n    ready: {kind: tcp}\n'
FLEET = (
    "version: 1\n"
    + FAST_DEFAULTS
    + "frameworks:\n"
    + GHOSTLY
    + "instances:\n"
    + embedded("alpha")
    + embedded("sleepy", 'command: ["sleep", "3600"]\nautostart: false')
)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DaemonProcess]:
    """alpha running; sleepy (never ready: its program never listens) declared, not started."""
    with running_daemon(tmp_path, FLEET) as daemon:
        daemon.wait_running("alpha")
        yield daemon


class TestWaitByDefault:
    def test_stop_and_start_print_the_state_reached(self, fleet: DaemonProcess) -> None:
        """Without flags stop waits and prints stopped (not the running it began from), start prints running;
        the old --wait is still accepted."""
        d = fleet
        stopped = ok(eyriectl(d.home, "stop", "alpha")).stdout
        assert stopped.startswith("alpha: stopped (stopped by request)"), stopped
        started = ok(eyriectl(d.home, "start", "alpha", "--wait")).stdout
        assert started.startswith("alpha: running"), started
        assert d.instance("alpha")["status"] == "running"

    def test_json_is_one_document_with_the_state_reached(self, fleet: DaemonProcess) -> None:
        """restart --json prints one JSON array holding each instance's state after the wait."""
        rows = json.loads(ok(eyriectl(fleet.home, "restart", "alpha", "--json")).stdout)
        assert [(r["name"], r["status"], r["timed_out"]) for r in rows] == [("alpha", "running", False)]

    def test_no_block_returns_before_the_state_is_reached(self, fleet: DaemonProcess) -> None:
        """start --no-block exits 0 at once although sleepy can never become ready."""
        d = fleet
        result = ok(eyriectl(d.home, "start", "sleepy", "--no-block"))
        assert result.stdout.startswith("sleepy: start requested, now "), result.stdout
        wait_for(lambda: d.instance("sleepy").get("status") == "starting", 20, "sleepy starting")
        ok(eyriectl(d.home, "stop", "sleepy"))

    def test_timeout_expires_with_exit_1_naming_the_state(self, fleet: DaemonProcess) -> None:
        """start --timeout 1 on an instance that never becomes ready exits 1, names it and where it stands,
        and prints the end of its log with eyried's own line about the start."""
        d = fleet
        result = eyriectl(d.home, "start", "sleepy", "--timeout", "1")
        assert result.returncode == 1, result
        assert "1 of 1 did not reach running: sleepy (starting after 1s)" in result.stderr
        assert "eyried: started pid" in result.stderr
        ok(eyriectl(d.home, "stop", "sleepy"))

    def test_no_block_refuses_a_timeout(self, fleet: DaemonProcess) -> None:
        """--no-block with --timeout is a usage error (exit 2), not silently one or the other."""
        assert eyriectl(fleet.home, "stop", "alpha", "--no-block", "--timeout", "3").returncode == 2


class TestFailedAdd:
    def test_missing_binary_exits_1_keeps_it_declared_and_says_why(self, fleet: DaemonProcess) -> None:
        """add of an instance whose program does not exist exits 1 with its last error and log tail; it
        stays in fleet.yaml, and ps --json carries the last error while it backs off."""
        d = fleet
        result = eyriectl(d.home, "add", "ghost", "--framework", "ghostly")
        assert result.returncode == 1, result
        assert "ghost did not start" in result.stderr
        assert "/nonexistent/eyrie-test-agent" in result.stderr
        assert "eyried: start failed" in result.stderr
        assert "stays declared" in result.stderr
        assert "name: ghost" in d.fleet_file.read_text()
        row = ps(d.home)["ghost"]
        assert row["last_error"] and row["status"] in ("stopped", "error"), row
        assert row["phase"] in ("backoff", "held", "cooldown"), row
