"""One bad entry never takes eyried or the rest of the fleet down: a real daemon, real agents, real files."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import make_instance
from tests._cli import eyriectl
from tests._daemon import embedded, fleet_yaml, pid_alive, running_daemon, wait_for

_NO_COMMAND = "ready: {kind: exec, command: []}"


def _status(home: Path, code: int = 0) -> dict[str, Any]:
    """``status --json``, which exits ``code`` (4: degraded, as after a rejected reload)."""
    result = eyriectl(home, "status", "--json")
    assert result.returncode == code, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _reload(home: Path) -> tuple[int, dict[str, Any]]:
    result = eyriectl(home, "reload", "--json")
    data: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, data


class TestInstanceWithoutPort:
    def test_port_zero_instance_gets_a_port_and_the_fleet_starts(self, tmp_path: Path) -> None:
        """An instance eyrie made with port 0, declared in fleet.yaml, gets a free port and runs; eyried and
        the other instance start as usual."""
        made = make_instance(Store(Home(tmp_path)), "alpha", port=0)
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            d.wait_running("alpha", "beta")
            inst = d.instance("alpha")
            assert inst["id"] == made.id
            assert 43000 <= inst["port"] <= 43999
            assert inst["port"] != d.instance("beta")["port"]
            assert "instance_port_assigned" in d.log()

    def test_port_zero_instance_declared_by_reload_gets_a_port(self, tmp_path: Path) -> None:
        """Declaring such an instance by reload applies (no HTTP 500) and it runs on a port of its own."""
        make_instance(Store(Home(tmp_path)), "alpha", port=0)
        with running_daemon(tmp_path, fleet_yaml(embedded("beta"))) as d:
            beta = d.wait_running("beta")["beta"]
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta")))
            code, result = _reload(tmp_path)
            assert code == 0, result
            assert result["added"] == ["alpha"]
            d.wait_running("alpha")
            assert d.instance("alpha")["port"] > 0
            assert d.instance("beta")["pid"] == beta


class TestInvalidDeclarationAtStart:
    def test_exec_probe_without_command_never_stops_eyried(self, tmp_path: Path) -> None:
        """An exec probe with ``command: []`` at start: eyried stays up with an empty fleet, and `status`
        names the file, the line and the reason."""
        fleet = fleet_yaml(embedded("alpha", _NO_COMMAND), embedded("beta"))
        with running_daemon(tmp_path, fleet) as d:
            status = _status(tmp_path, 4)
            problems = "\n".join(status["problems"])
            assert "exec probe needs a command" in problems
            assert "fleet.yaml:" in problems
            assert status["last_reload"]["ok"] is False
            assert d.instances() == {}
            assert d.proc is not None and d.proc.poll() is None

    def test_invalid_file_at_start_runs_the_fleet_last_applied(self, tmp_path: Path) -> None:
        """eyried stopped, fleet.yaml broken, eyried started: it runs the fleet last applied and says so;
        fixing the file and reloading applies it."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            assert d.terminate() == 0
            d.write_fleet("version: 1\ninstances:\n  - name: Bad Name\n")
            d.start()
            d.wait_serving()
            d.wait_running("alpha")
            status = _status(tmp_path, 4)
            assert any("fleet last applied" in p for p in status["problems"]), status
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta")))
            code, result = _reload(tmp_path)
            assert code == 0 and result["added"] == ["beta"], result
            d.wait_running("beta")
            assert not any("rejected" in p for p in _status(tmp_path)["problems"])


class TestAllOrNothingReload:
    def test_one_impossible_entry_rejects_the_whole_reload(self, tmp_path: Path) -> None:
        """A reload adding a good and an impossible instance applies neither and lists the problem; once
        fixed, both are added (never stuck as "unchanged")."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            alpha = d.wait_running("alpha")["alpha"]
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta"), embedded("gamma", _NO_COMMAND)))
            code, result = _reload(tmp_path)
            assert code != 0
            assert result["ok"] is False
            assert any("exec probe needs a command" in p for p in result["problems"])
            assert set(d.instances()) == {"alpha"}
            d.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta"), embedded("gamma")))
            code, result = _reload(tmp_path)
            assert code == 0 and sorted(result["added"]) == ["beta", "gamma"], result
            d.wait_running("beta", "gamma")
            assert d.instance("alpha")["pid"] == alpha and pid_alive(alpha)

    def test_sighup_with_an_impossible_entry_keeps_eyried_and_the_fleet(self, tmp_path: Path) -> None:
        """The same by SIGHUP: rejected in the log, eyried and the running fleet untouched."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            alpha = d.wait_running("alpha")["alpha"]
            d.write_fleet(fleet_yaml(embedded("alpha", _NO_COMMAND)))
            d.signal(signal.SIGHUP)
            wait_for(lambda: "reload_rejected" in d.log(), 20, "the reload to be rejected")
            assert d.proc is not None and d.proc.poll() is None
            assert d.instance("alpha")["pid"] == alpha and pid_alive(alpha)
