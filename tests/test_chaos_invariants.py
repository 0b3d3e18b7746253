"""The chaos soak's invariant checker, on real processes and real instance files (no daemon: its own checks
are left out here, the soak exercises them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._chaos.invariants import Checker, Expected, Violation
from bench._chaos.procs import RUN_VAR, end_all, snapshot
from supervisor.engine.procfs import read_stat, uptime_ticks
from supervisor.testing import faulty, process_gone, reap
from tests._daemon import wait_for


class Home:
    """A soak-like home: instance files written by hand, agents started with this home's tag."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def agent(self, instance_id: str, *flags: str, gen: str = "1") -> int:
        env = {**os.environ, RUN_VAR: str(self.root), "EYRIE_INSTANCE_ID": instance_id, "CHAOS_GEN": gen}
        proc = subprocess.Popen(faulty(*flags), env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_for(lambda: proc.pid in snapshot(str(self.root)), 10, "the agent to show in /proc")
        return proc.pid

    def instance(self, name: str, status: str = "running", pid: int | None = None) -> str:
        instance_id = str(uuid.uuid4())
        directory = self.root / "instances" / instance_id
        directory.mkdir(parents=True)
        data = {"id": instance_id, "name": name, "framework": "embedded", "status": status, "pid": pid}
        (directory / "instance.json").write_text(json.dumps(data))
        return instance_id

    def record_pid(self, instance_id: str, pid: int) -> None:
        path = self.root / "instances" / instance_id / "instance.json"
        data = json.loads(path.read_text())
        data["pid"] = pid
        path.write_text(json.dumps(data))

    def check(self, env: dict[str, dict[str, str]], stopped: frozenset[str] = frozenset()) -> list[Violation]:
        found = Checker(self.root, str(self.root)).check(Expected(env, stopped))
        return [v for v in found if not v.kind.startswith("daemon-")]

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(10)
        assert end_all(str(self.root)) == []


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = Home(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _kinds(violations: list[Violation]) -> list[tuple[str, str]]:
    return sorted((v.kind, v.subject) for v in violations)


class TestChecker:
    def test_running_instance_with_declared_env_passes(self, home: Home) -> None:
        """A live recorded pid with the instance's marker and the declared env is no violation."""
        instance_id = home.instance("alpha")
        home.record_pid(instance_id, home.agent(instance_id))
        assert home.check({"alpha": {"CHAOS_GEN": "1"}}) == []

    def test_changed_env_not_applied(self, home: Home) -> None:
        """A process still running with the env the file declared before is stale."""
        instance_id = home.instance("alpha")
        home.record_pid(instance_id, home.agent(instance_id, gen="1"))
        assert _kinds(home.check({"alpha": {"CHAOS_GEN": "2"}})) == [("stale-env", "alpha")]

    def test_dead_recorded_pid(self, home: Home) -> None:
        """instance.json says running with a pid that has ended."""
        instance_id = home.instance("alpha")
        pid = home.agent(instance_id)
        home.record_pid(instance_id, pid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: reap(pid) and process_gone(pid), 10, "the agent to end")
        assert _kinds(home.check({"alpha": {"CHAOS_GEN": "1"}})) == [("pid-dead", "alpha")]

    def test_removed_instance_left_running_and_on_disk(self, home: Home) -> None:
        """An instance no longer declared: its process and its directory outside the trash are violations."""
        instance_id = home.instance("gone")
        home.record_pid(instance_id, home.agent(instance_id))
        found = home.check({})
        assert _kinds(found) == [("process-of-removed", "gone"), ("removed-files-left", "gone")]

    def test_process_of_unknown_instance(self, home: Home) -> None:
        """A process carrying a marker no instance directory has (its directory deleted) is reported."""
        home.agent(str(uuid.uuid4()))
        assert [v.kind for v in home.check({})] == ["process-of-removed"]

    def test_stopped_instance_with_a_process(self, home: Home) -> None:
        """An instance stopped on purpose has no process, whatever its file says."""
        instance_id = home.instance("alpha", status="stopped")
        home.agent(instance_id)
        found = home.check({"alpha": {"CHAOS_GEN": "1"}}, frozenset({"alpha"}))
        assert _kinds(found) == [("process-of-stopped", "alpha")]

    def test_older_leftover_is_stray_but_detached_grandchild_is_not(self, home: Home, tmp_path: Path) -> None:
        """A marked process older than the recorded pid and outside its tree is a leftover of an earlier run;
        a grandchild the recorded agent left in its own session later belongs to it."""
        instance_id = home.instance("alpha")
        leftover = home.agent(instance_id)
        born = read_stat(leftover)
        assert born is not None
        wait_for(lambda: uptime_ticks() > born.start_ticks, 5, "a clock tick after the leftover started")
        pid_file = tmp_path / "grandchild.pid"
        home.record_pid(instance_id, home.agent(instance_id, "--grandchild", str(pid_file)))
        grandchild = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 10, "the grandchild"))
        found = home.check({"alpha": {"CHAOS_GEN": "1"}})
        assert [(v.kind, v.pid) for v in found] == [("stray-process", leftover)]
        assert grandchild in snapshot(str(home.root))

    def test_unreadable_instance_file(self, home: Home) -> None:
        """A truncated instance.json is reported by its directory."""
        instance_id = home.instance("alpha", status="stopped")
        (home.root / "instances" / instance_id / "instance.json").write_text('{"id": "')
        assert _kinds(home.check({})) == [("invalid-instance-json", instance_id)]

    def test_removal_with_a_trash_must_keep_the_directory(self, home: Home) -> None:
        """Once removed/ exists, a removed instance's directory must be found in it."""
        instance_id = home.instance("gone", status="stopped")
        checker = Checker(home.root, str(home.root))
        assert checker.check(Expected({"gone": {}}, frozenset({"gone"})))[0].kind == "daemon-count"
        (home.root / "removed").mkdir()
        kept = home.root / "removed" / f"gone-{instance_id}-20261130T090000Z"
        (home.root / "instances" / instance_id).rename(kept)
        assert [v.kind for v in checker.check(Expected({}))] == ["daemon-count"]
        kept.rename(home.root / "elsewhere")
        assert [v.kind for v in checker.check(Expected({}))] == ["daemon-count", "removed-files-lost"]
