"""eyried end to end: a real daemon process, real embedded agents, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests._cli import eyriectl
from tests._daemon import embedded, fleet_yaml, kill_quietly, pid_alive, running_daemon, wait_for


def _health(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
        return int(resp.status)


class TestStartAndStop:
    def test_declared_fleet_is_provisioned_and_running(self, tmp_path: Path) -> None:
        """On start eyried provisions every declared instance and brings it to running with a live port."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            for name in ("alpha", "beta"):
                inst = d.instance(name)
                assert inst["framework"] == "embedded"
                assert 43000 <= inst["port"] <= 43999
                assert _health(inst["port"]) == 200
                assert inst["pgid"] == pids[name]
                assert inst["boot_id"]
                assert "auth_token" not in inst

    def test_sigterm_stops_every_agent_and_keeps_desired_state(self, tmp_path: Path) -> None:
        """SIGTERM stops all agents (stopped, desired kept), exits 0; the next start brings them back."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            assert d.terminate() == 0
            for name, pid in pids.items():
                assert not pid_alive(pid)
                inst = d.instance(name)
                assert inst["status"] == "stopped"
                assert inst.get("desired", "running") == "running"
            d.start()
            d.wait_serving()
            new = d.wait_running("alpha", "beta")
            assert set(new.values()).isdisjoint(pids.values())

    def test_second_daemon_refuses_and_names_the_first(self, tmp_path: Path) -> None:
        """A second eyried on the same home exits non-zero and names the pid of the first."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            assert d.proc is not None
            second = subprocess.run(
                [sys.executable, "-m", "supervisor.daemon", "--home", str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "EYRIE_HOME": str(tmp_path)},
            )
            assert second.returncode == 1
            assert f"pid {d.proc.pid}" in second.stderr

    def test_invalid_fleet_file_at_start_never_stops_eyried(self, tmp_path: Path) -> None:
        """An invalid fleet file at start leaves eyried serving (nothing applied yet, so no instances), and
        `eyriectl status` names the file and line."""
        with running_daemon(tmp_path, "version: 1\ninstances:\n  - name: Bad Name\n") as d:
            status = eyriectl(tmp_path, "status")
            assert status.returncode == 4, status.stderr  # degraded: the file at start was rejected
            assert "fleet.yaml:3" in status.stdout
            assert d.instances() == {}
            assert d.proc is not None and d.proc.poll() is None


class TestHealing:
    def test_killed_agent_is_restarted(self, tmp_path: Path) -> None:
        """kill -9 of an agent gets a new pid running, restart_count 1."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            old = d.wait_running("alpha")["alpha"]
            kill_quietly(old)
            inst = d.wait_new_pid("alpha", old)
            assert inst["restart_count"] == 1
            assert inst["total_restarts"] == 1
            assert inst["last_exit"]["signal"] == signal.SIGKILL


class TestReload:
    def test_sighup_adds_removes_and_restarts_only_the_changed(self, tmp_path: Path) -> None:
        """SIGHUP provisions added, deletes removed, restarts only the instance whose model changed."""
        fleet = fleet_yaml(embedded("alpha"), embedded("beta"), embedded("gamma"))
        with running_daemon(tmp_path, fleet) as d:
            pids = d.wait_running("alpha", "beta", "gamma")
            gamma_dir = tmp_path / "instances" / d.instance("gamma")["id"]
            d.write_fleet(
                fleet_yaml(embedded("alpha"), embedded("beta", "model: other-model"), embedded("delta"))
            )
            d.signal(signal.SIGHUP)
            d.wait_running("delta")
            wait_for(lambda: not gamma_dir.exists(), 20, "gamma's files deleted")
            assert not pid_alive(pids["gamma"])
            new_beta = d.wait_new_pid("beta", pids["beta"])
            assert new_beta["model"] == "other-model"
            assert d.instance("alpha")["pid"] == pids["alpha"]
            assert pid_alive(pids["alpha"])

    def test_policy_only_change_applies_without_restart(self, tmp_path: Path) -> None:
        """A change of restart or health policy alone is applied live: same pid."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            pid = d.wait_running("alpha")["alpha"]
            d.write_fleet(fleet_yaml(embedded("alpha", "restart: {max_retries: 2}\nhealth: {interval: 1s}")))
            d.signal(signal.SIGHUP)
            wait_for(lambda: "reload_applied" in d.log(), 20, "the reload to be applied")
            assert d.instance("alpha")["pid"] == pid
            assert d.instance("alpha")["restart_count"] == 0
            assert pid_alive(pid)

    def test_broken_file_changes_nothing(self, tmp_path: Path) -> None:
        """A broken fleet file on SIGHUP is rejected with one error line; the fleet runs on untouched."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            pid = d.wait_running("alpha")["alpha"]
            d.write_fleet("version: 1\ninstances:\n  - name: alpha\n    framework: [oops\n")
            d.signal(signal.SIGHUP)
            wait_for(lambda: "reload_rejected" in d.log(), 20, "the reload to be rejected")
            assert d.instance("alpha")["pid"] == pid
            assert pid_alive(pid)
            assert d.proc is not None and d.proc.poll() is None


class TestAdoption:
    def test_sigkilled_daemon_adopts_live_agents_and_restarts_dead_ones(self, tmp_path: Path) -> None:
        """After kill -9 of eyried, a new one adopts live agents (same pid, 0 restarts), restarts the dead."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            d.kill()
            assert pid_alive(pids["alpha"]) and pid_alive(pids["beta"])
            kill_quietly(pids["beta"])
            wait_for(lambda: not pid_alive(pids["beta"]), 10, "beta to die")
            d.start()
            d.wait_serving()
            alpha = d.wait_status("alpha", "running")
            assert alpha["pid"] == pids["alpha"]
            assert alpha["restart_count"] == 0
            beta = d.wait_new_pid("beta", pids["beta"])
            assert beta["restart_count"] == 1
