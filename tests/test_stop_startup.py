"""SIGTERM during a first start of a large fleet: eyried stops provisioning, stops what runs, exits cleanly,
and the next start carries on."""

from __future__ import annotations

import signal
from pathlib import Path

from tests._daemon import DaemonProcess, pid_alive, sleeper_fleet, wait_for

FLEET = 150


def _fleet(n: int) -> str:
    return sleeper_fleet([f"sleeper-{i:03d}" for i in range(n)])


def test_sigterm_during_first_start_exits_and_the_next_start_carries_on(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.write_fleet(_fleet(FLEET))
    try:
        daemon.start()
        daemon.wait_serving()  # the API is up before the fleet is provisioned
        daemon.signal(signal.SIGTERM)
        assert daemon.terminate() == 0
        log = daemon.log()
        assert "startup_interrupted" in log and "daemon_stopped" in log
        assert "Traceback" not in log

        daemon.start()
        daemon.wait_serving()

        def all_running() -> bool:
            found = daemon.instances()
            return len(found) == FLEET and all(i.get("status") == "running" for i in found.values())

        wait_for(all_running, 180, f"all {FLEET} instances running after the second start")
    finally:
        daemon.close()


def test_sigterm_during_adoption_leaves_no_process_unsupervised(tmp_path: Path) -> None:
    """The daemon was SIGKILLed; its successor gets SIGTERM while adopting: every agent is stopped, none is
    left running without a supervisor."""
    daemon = DaemonProcess(tmp_path)
    daemon.write_fleet(_fleet(30))
    try:
        daemon.start()
        daemon.wait_serving()
        pids = daemon.wait_running(*(f"sleeper-{i:03d}" for i in range(30)), timeout=120)
        daemon.kill()
        daemon.start()
        wait_for(lambda: daemon.log().count("daemon_starting") == 2, 60, "the successor starting")
        daemon.signal(signal.SIGTERM)
        assert daemon.terminate() == 0
        wait_for(lambda: not any(pid_alive(pid) for pid in pids.values()), 30, "every adopted agent stopped")
    finally:
        daemon.close()
