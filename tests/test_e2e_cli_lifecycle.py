"""eyriectl end to end, the running fleet: start/stop/restart, enable/disable, logs -f, events -f, the daemon
down (offline edits, exit 3), and ``daemon restart`` re-executing a real eyried in place."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests._cli import OFFLINE, eyriectl, eyriectl_many, following, ok, ps
from tests._daemon import DaemonProcess, embedded, fleet_yaml, pid_alive, running_daemon, wait_for

BROKEN = embedded("broken", 'command: ["false"]\nrestart: {policy: never}\nautostart: false')


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DaemonProcess]:
    """alpha and beta running; broken (its program is `false`, never restarted) declared, not started."""
    with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"), BROKEN)) as daemon:
        daemon.wait_running("alpha", "beta")
        yield daemon


def _statuses(d: DaemonProcess) -> dict[str, str]:
    return {name: inst.get("status", "") for name, inst in d.instances().items()}


class TestStartStopRestart:
    def test_names_all_and_wait(self, fleet: DaemonProcess) -> None:
        """stop/start/restart by name or --all; --wait reports the end state and exits 1 when one fails."""
        d = fleet
        pids = {name: d.instance(name)["pid"] for name in ("alpha", "beta")}
        stopped = ok(eyriectl(d.home, "stop", "alpha", "beta", "--wait")).stdout
        assert sorted(line.split(",")[0] for line in stopped.splitlines()) == [
            "alpha: stopped (stopped by request)", "beta: stopped (stopped by request)",
        ]  # fmt: skip
        assert not any(pid_alive(pid) for pid in pids.values())

        started = eyriectl(d.home, "start", "--all", "--wait")
        assert started.returncode == 1
        assert "1 of 3 did not reach running: broken" in started.stderr
        assert re.search(r"^alpha: running .*pid \d+", started.stdout, re.M)
        assert re.search(r"^broken: error .*\n  last error: exit code 1$", started.stdout, re.M)
        assert _statuses(d) == {"alpha": "running", "beta": "running", "broken": "error"}

        alpha = d.instance("alpha")["pid"]
        ok(eyriectl(d.home, "restart", "alpha", "--wait"))
        assert d.instance("alpha")["pid"] != alpha and not pid_alive(alpha)
        assert pid_alive(d.instance("alpha")["pid"])

        ok(eyriectl(d.home, "stop", "--all"))
        wait_for(lambda: set(_statuses(d).values()) <= {"stopped", "error"}, 20, "every instance stopped")
        ok(eyriectl(d.home, "start", "alpha"))
        d.wait_running("alpha")
        assert _statuses(d)["beta"] == "stopped"


class TestFollow:
    def test_logs_and_events_follow_a_restart(self, fleet: DaemonProcess) -> None:
        """logs -f prints the agent's new lines, with eyried's own about the stop and start between them, and
        events -f its transitions as a restart happens."""
        d = fleet
        port = d.instance("alpha")["port"]
        ok(eyriectl(d.home, "reload"))  # an event in the history: events -f -n 20 prints it at once
        with (
            following(d.home, "logs", "alpha", "-f", "-n", "1") as logs,
            following(d.home, "events", "-f", "-n", "20") as events,
        ):
            before = len(logs.read_until(f"EMBEDDED_READY port={port}\n"))
            seen = len(events.read_until("  reload  applied"))
            ok(eyriectl(d.home, "restart", "alpha"))
            told = logs.read_until(f"EMBEDDED_READY port={port}\n", start=before)[before:]
            assert re.search(
                r"embedded: SIGTERM received, exiting\n\S+ eyried: stopped pid \d+ .*\n"
                rf"\S+ eyried: started pid \d+ on port {port}\nEMBEDDED_READY port={port}\n",
                told,
            ), told
            events.read_until("alpha  running → ", "alpha  starting → running", start=seen)
            assert events.interrupt() == 0 and logs.interrupt() == 0
        recent = ok(eyriectl(d.home, "events", "-n", "200", "--json")).stdout
        alpha = [json.loads(line) for line in recent.splitlines() if '"alpha"' in line]
        assert [e["to_status"] for e in alpha][-2:] == ["starting", "running"]


class TestDaemonDown:
    def test_offline_edits_apply_at_next_start(self, tmp_path: Path) -> None:
        """With eyried stopped, add and disable edit fleet.yaml and say so; the next eyried applies them."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            assert d.terminate() == 0
            added, disabled = eyriectl_many(
                d.home, [["add", "beta", "--framework", "embedded"], ["disable", "alpha"]]
            )
            assert ok(added).stdout == f"declared beta in {d.fleet_file}\n" and OFFLINE in added.stderr
            assert ok(disabled).stdout == "alpha: autostart off\n" and OFFLINE in disabled.stderr
            assert not (d.home / "run" / "eyried.sock").exists()
            d.start()
            d.wait_serving()
            d.wait_running("alpha", "beta")
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == (["DISABLED"], [])

    def test_commands_that_need_the_daemon_exit_3(self, tmp_path: Path) -> None:
        """After kill -9 of eyried (stale socket and pid file) every daemon command exits 3 with the hint."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            d.kill()
            assert (d.home / "run" / "eyried.sock").exists() and (d.home / "run" / "eyried.pid").exists()
            calls = [
                ["status"],
                ["reload"],
                ["events", "-f"],
                ["restart", "alpha", "--wait"],
                ["ps"],
                ["daemon", "restart"],
            ]
            hint = f"eyried is not running for {d.home}; start it with `eyried --home {d.home}`"
            for result in eyriectl_many(d.home, calls):
                assert result.returncode == 3, result
                assert hint in result.stderr, result
            rows = json.loads(eyriectl(d.home, "ps", "--json").stdout)
            assert [row["name"] for row in rows] == ["alpha"] and rows[0]["status"] == "running"


class TestDaemonRestart:
    def test_reexec_keeps_the_agents(self, fleet: DaemonProcess) -> None:
        """daemon restart re-executes eyried under the same pid, later started_at; agents keep their pids."""
        d = fleet
        assert d.proc is not None
        pids = {name: d.instance(name)["pid"] for name in ("alpha", "beta")}
        before = json.loads(ok(eyriectl(d.home, "status", "--json")).stdout)
        out = ok(eyriectl(d.home, "daemon", "restart", "--timeout", "30")).stdout
        assert re.match(rf"eyried re-executed in place in \d+\.\ds: pid {d.proc.pid}, version ", out), out
        assert "agents kept running with the same pid: 2 of 2\n" in out
        after = json.loads(ok(eyriectl(d.home, "status", "--json")).stdout)
        assert after["pid"] == before["pid"] == d.proc.pid and d.proc.poll() is None
        assert datetime.fromisoformat(after["started_at"]) > datetime.fromisoformat(before["started_at"])
        assert {name: d.instance(name)["pid"] for name in pids} == pids
        assert all(d.instance(name)["restart_count"] == 0 for name in pids)

    def test_refuses_a_pid_that_is_not_this_homes_eyried(self, tmp_path: Path) -> None:
        """A pid file naming a stranger or another home's eyried: refused, unsignalled; a dead pid: exit 3."""
        home = tmp_path / "home"
        (home / "run").mkdir(parents=True)
        fake = tmp_path / "bin" / "eyried"
        fake.parent.mkdir()
        fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
        fake.chmod(0o755)
        stranger = subprocess.Popen(["sleep", "60"])
        other = subprocess.Popen([str(fake), "--home", str(tmp_path / "elsewhere")])
        gone = subprocess.Popen(["true"])
        gone.wait()
        try:
            wait_for(lambda: "eyried" in " ".join(_cmdline(other.pid)), 10, "the fake eyried to run")
            for proc, message, code in (
                (stranger, f"names pid {stranger.pid}, which is not eyried", 1),
                (other, f"pid {other.pid} is an eyried for {tmp_path / 'elsewhere'}, not for {home}", 1),
                (gone, f"names pid {gone.pid}, which is not running", 3),
            ):
                (home / "run" / "eyried.pid").write_text(f"{proc.pid}\n")
                result = eyriectl(home, "daemon", "restart")
                assert result.returncode == code and message in result.stderr, result
            assert stranger.poll() is None and other.poll() is None
        finally:
            for proc in (stranger, other):
                proc.kill()
                proc.wait()


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []
