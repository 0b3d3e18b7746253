"""What a user of a real agent gateway relies on, played in order against one fleet per framework: provisioned
and ready, two side by side, healed after ``kill -9``, adopted across a daemon crash and a re-exec, reloaded
for a model change alone, stopped with its whole tree."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from typing import ClassVar

import psutil
import pytest

from supervisor.frameworks.registry import builtin_spec
from supervisor.sandbox.confine import Sandboxes
from tests._daemon import wait_for
from tests.real._fleet import USER_STATE, RealFleet, gone, measured, seconds_since, tree_rss_mib

_CONFINED = Sandboxes().label
"""How ``ps`` shows a confined agent on this kernel: ``landlock v7`` here (docs/sandbox.md)."""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _open_paths(procs: list[psutil.Process]) -> set[str]:
    paths: set[str] = set()
    for proc in procs:
        try:
            paths.update(f.path for f in proc.open_files())
            paths.add(proc.cwd())
        except psutil.Error:
            continue
    return paths


@pytest.mark.real
@pytest.mark.timeout(600)
class RealAgentScenario:
    """Subclassed once per framework (``FRAMEWORK``); the tests run in the order written, on one fleet."""

    FRAMEWORK: ClassVar[str]

    def model_seen_by_program(self, fleet: RealFleet, name: str) -> str:
        """The model the real program reads from the config eyried rendered for ``name``, as its own CLI
        shows it."""
        state = fleet.instance_dir(name) / "state"
        env = {**os.environ, **fleet.env}
        if self.FRAMEWORK == "openclaw":
            env.update(OPENCLAW_CONFIG_PATH=str(fleet.config_file(name)), OPENCLAW_STATE_DIR=str(state))
            argv = ["openclaw", "config", "get", "agents.defaults.model.primary"]
            pattern = r"^(\S+)\s*$"
        else:
            env["HERMES_HOME"] = str(state)
            argv = ["hermes", "config", "show"]
            pattern = r"Model:\s+\{'default': '([^']+)'"
        out = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=True
        ).stdout
        match = re.search(pattern, out, re.MULTILINE)
        assert match, out
        return match.group(1)

    def test_provisioned_config_is_accepted_and_ready(self, real_fleet: RealFleet) -> None:
        """The real program starts from the config eyried rendered (no escape hatch on its command line),
        passes the definition's readiness probe, then its liveness probe while it runs."""
        fleet = real_fleet
        started = fleet.start_daemon()
        for name in (fleet.a, fleet.b):
            row = fleet.wait_ready(name)
            measured(self.FRAMEWORK, f"{name}: eyried start → ready", f"{time.monotonic() - started:.1f} s")
            measured(self.FRAMEWORK, f"{name}: spawn → ready", f"{seconds_since(row['started_at']):.1f} s")
            assert row["restart_count"] == 0 and row["sandbox"] == _CONFINED, row
            assert not [a for a in row["cmdline"] if a.startswith("--allow-unconfigured")], row["cmdline"]
        for name in (fleet.a, fleet.b):
            row = fleet.wait_probed(name)
            assert row["health_status"] == "healthy" and row["phase"] == "running", row
            measured(self.FRAMEWORK, f"{name}: RSS of the tree", f"{tree_rss_mib(fleet.tree(name)):.0f} MiB")

    def test_two_instances_side_by_side(self, real_fleet: RealFleet) -> None:
        """Each gateway listens on its own port and works in its own instance directory; neither has the
        other's files open, and neither touches the user's own state directory."""
        fleet = real_fleet
        rows = fleet.rows()
        a, b = rows[fleet.a], rows[fleet.b]
        assert a["port"] != b["port"] and not _port_free(a["port"]) and not _port_free(b["port"])
        dirs = {name: fleet.instance_dir(name) for name in (fleet.a, fleet.b)}
        for name, other in ((fleet.a, fleet.b), (fleet.b, fleet.a)):
            paths = _open_paths(fleet.tree(name))
            assert not [p for p in paths if p.startswith(f"{dirs[other]}/")], (name, paths)
            assert [p for p in paths if p.startswith(f"{dirs[name]}/")], (name, paths)
        assert not (fleet.user_home / USER_STATE[self.FRAMEWORK]).exists()
        assert fleet.real_user_state() == fleet.real_user_state_before

    def test_kill_9_restarts_it(self, real_fleet: RealFleet) -> None:
        """``kill -9`` of the gateway: restarted by the restart policy, ``restart_count`` 1, ready again."""
        fleet = real_fleet
        old = fleet.rows()[fleet.a]["pid"]
        killed = time.monotonic()
        psutil.Process(old).send_signal(signal.SIGKILL)
        row = fleet.wait_ready(fleet.a, other_than=old)
        measured(self.FRAMEWORK, "kill -9 → ready again", f"{time.monotonic() - killed:.1f} s")
        assert row["restart_count"] == 1, row
        assert fleet.rows()[fleet.b]["restart_count"] == 0

    def test_eyried_killed_and_started_again_adopts_the_gateways(self, real_fleet: RealFleet) -> None:
        """SIGKILL of eyried, then a new eyried: the same gateway processes, adopted, none restarted (even
        where the program rewrote its process title)."""
        fleet = real_fleet
        before = {name: fleet.record(name) for name in (fleet.a, fleet.b)}
        fleet.daemon.kill()
        started = fleet.start_daemon()

        def adopted() -> bool:
            records = {name: fleet.record(name) for name in before}
            return all(r.get("status_detail", "").startswith("adopted") for r in records.values())

        wait_for(adopted, 60, "both gateways adopted")
        measured(self.FRAMEWORK, "eyried start → both adopted", f"{time.monotonic() - started:.2f} s")
        rows = fleet.rows()
        for name, was in before.items():
            assert rows[name]["pid"] == was["pid"] and rows[name]["restart_count"] == was["restart_count"]
            assert rows[name]["status"] == "running", rows[name]

    def test_daemon_restart_keeps_the_gateways(self, real_fleet: RealFleet) -> None:
        """``eyriectl daemon restart`` re-executes eyried; the gateways keep their pids."""
        fleet = real_fleet
        pids = {name: fleet.record(name)["pid"] for name in (fleet.a, fleet.b)}
        out = fleet.ctl("daemon", "restart", "--timeout", "60")
        assert "agents kept running with the same pid: 2 of 2" in out, out
        took = re.search(r"re-executed in place in (\d+\.\d)s", out)
        assert took, out
        measured(self.FRAMEWORK, "daemon restart (re-exec, both adopted)", f"{took.group(1)} s")
        rows = fleet.rows()
        assert {name: rows[name]["pid"] for name in pids} == pids

    def test_model_change_restarts_that_instance_alone(self, real_fleet: RealFleet) -> None:
        """A reload that changes one instance's model re-renders its config and restarts it alone; a reload
        that changes nothing touches nothing."""
        fleet = real_fleet
        rows = fleet.rows()
        a_pid, b_pid = rows[fleet.a]["pid"], rows[fleet.b]["pid"]
        a_config = fleet.config_file(fleet.a).stat().st_mtime_ns
        fleet.models[fleet.b] = "anthropic/claude-opus-4"
        fleet.write_fleet()
        answer = fleet.ctl("reload")
        assert f"restarted: {fleet.b}\n" in answer and "unchanged: 1\n" in answer, answer
        row = fleet.wait_ready(fleet.b, other_than=b_pid)
        assert self.model_seen_by_program(fleet, fleet.b) == "anthropic/claude-opus-4"
        assert fleet.rows()[fleet.a]["pid"] == a_pid
        assert fleet.config_file(fleet.a).stat().st_mtime_ns == a_config
        assert row["restart_count"] == 0  # a change, not a failure

        configs = {name: fleet.config_file(name).stat().st_mtime_ns for name in (fleet.a, fleet.b)}
        pids = {name: fleet.rows()[name]["pid"] for name in (fleet.a, fleet.b)}
        answer = fleet.ctl("reload")
        assert answer.splitlines()[1:] == ["  unchanged: 2"], answer
        assert {name: fleet.config_file(name).stat().st_mtime_ns for name in configs} == configs
        assert {name: fleet.rows()[name]["pid"] for name in pids} == pids

    def test_stop_ends_the_whole_tree_and_frees_the_port(self, real_fleet: RealFleet) -> None:
        """``eyriectl stop``: every process of the tree gone (helpers in a session of their own included)
        and the port free, within the stop timeout; with a stop timeout of 0, by SIGKILL at once."""
        fleet = real_fleet
        for name, limit in ((fleet.a, builtin_spec(self.FRAMEWORK).stop_timeout), (fleet.b, 0.0)):
            row = fleet.rows()[name]
            tree = fleet.tree(name)
            sessions = {p.pid: _sid(p) for p in tree}
            asked = time.monotonic()
            fleet.ctl("stop", name, "--wait", timeout=limit + 60)
            took = time.monotonic() - asked
            what = f"{name}: stop of {len(tree)} process(es) in {len(set(sessions.values()))} session(s)"
            measured(self.FRAMEWORK, f"{what} (stop_timeout {limit:g} s)", f"{took:.1f} s")
            assert gone(tree), [(p.pid, sessions[p.pid]) for p in tree if not gone([p])]
            assert _port_free(row["port"])
            assert took < limit + 15, took
            assert fleet.rows()[name]["status"] == "stopped"
        assert fleet.record(fleet.b)["last_exit"].get("signal") == signal.SIGKILL


def _sid(proc: psutil.Process) -> int | None:
    try:
        return os.getsid(proc.pid)
    except OSError:
        return None
