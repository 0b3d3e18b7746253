"""``--json`` through the real eyriectl, as a pipe gets it: every command that prints data prints exactly one
JSON document on stdout (JSON lines for the event stream), with an unreadable ``instance.json`` in the home
whose warnings must go to stderr and nowhere else."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._cli import eyriectl, eyriectl_many, ok
from tests._daemon import DaemonProcess, embedded, fleet_yaml

FLEET = fleet_yaml(embedded("alpha"), embedded("beta"))
TORN_ID = "torn-instance"

ONLINE = [
    (["ps", "--json"], {0}),
    (["list", "--json"], {0}),
    (["status", "--json"], {0, 4}),
    (["reload", "--json"], {0}),
    (["reload", "--dry-run", "--json"], {0}),
    (["projects", "--json"], {0}),
    (["projects", "list", "--json"], {0}),
    (["trash", "--json"], {0}),
    (["trash", "list", "--json"], {0}),
    (["secret", "list", "--json"], {0}),
    (["migrate", "--dry-run", "--json"], {1}),
    (["install", "--dry-run", "--json"], {0}),
    (["uninstall", "--dry-run", "--json"], {0}),
    (["doctor", "--json"], {0, 1}),
    (["status", "alpha", "--json"], {0}),
    (["top", "--json"], {0}),
    (["start", "alpha", "--json"], {0}),
]
"""Commands and the exit codes they may give here (migrate fails on the torn file, doctor names it)."""

OFFLINE = [
    (["ps", "--json"], {3}),
    (["list", "--json"], {3}),
    (["reload", "--dry-run", "--json"], {3}),
    (["migrate", "--dry-run", "--json"], {1}),
    (["projects", "--json"], {0}),
    (["trash", "--json"], {0}),
    (["secret", "list", "--json"], {0}),
]


def _tear(home: Path) -> None:
    """An instance directory whose instance.json is not JSON: every reader of the store warns about it."""
    directory = home / "instances" / TORN_ID
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "instance.json").write_text("{torn")


def _one_document(result: subprocess.CompletedProcess[str], codes: set[int]) -> object:
    assert result.returncode in codes, f"{result.args} exited {result.returncode}:\n{result.stderr}"
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        message = f"{result.args} printed no single JSON document ({exc}):\n{result.stdout}"
        raise AssertionError(message) from None


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """eyried on alpha and beta (running), with a torn instance.json beside them."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("json"))
    daemon.write_fleet(FLEET)
    _tear(daemon.home)
    try:
        daemon.start()
        daemon.wait_serving()
        daemon.wait_running("alpha", "beta")
        yield daemon
    finally:
        daemon.close()


class TestOnline:
    def test_every_json_command_prints_one_document(self, daemon: DaemonProcess) -> None:
        """Each data command's --json output parses whole, the torn instance.json notwithstanding."""
        results = eyriectl_many(daemon.home, [args for args, _ in ONLINE])
        for (args, codes), result in zip(ONLINE, results, strict=True):
            _one_document(result, codes)
            assert args[0] == result.args[0]

    def test_status_json_carries_what_is_degraded(self, daemon: DaemonProcess) -> None:
        """status --json is the daemon's status plus "degraded", a list of reasons."""
        data = _one_document(eyriectl(daemon.home, "status", "--json"), {0, 4})
        assert isinstance(data, dict) and isinstance(data["degraded"], list) and data["pid"]

    def test_events_json_is_one_object_per_line(self, daemon: DaemonProcess) -> None:
        """events --json prints JSON lines: each line one event object."""
        ok(eyriectl(daemon.home, "reload"))
        result = ok(eyriectl(daemon.home, "events", "-n", "50", "--json"))
        events = [json.loads(line) for line in result.stdout.splitlines()]
        assert events and all(isinstance(e, dict) and "event" in e for e in events)

    def test_logs_json_is_one_object_per_line(self, daemon: DaemonProcess) -> None:
        """logs --json, merged or of one instance, prints JSON lines: each line one log line object."""
        for args in (["logs", "-n", "20", "--json"], ["logs", "alpha", "-n", "20", "--json"]):
            result = ok(eyriectl(daemon.home, *args))
            lines = [json.loads(line) for line in result.stdout.splitlines()]
            assert lines and all({"instance", "line"} <= set(line) for line in lines), result.stdout

    def test_add_and_remove_json(self, daemon: DaemonProcess) -> None:
        """add --json and remove --json each print one document."""
        added = _one_document(eyriectl(daemon.home, "add", "gamma", "--framework", "embedded", "--json"), {0})
        assert isinstance(added, dict) and added["name"] == "gamma"
        removed = _one_document(eyriectl(daemon.home, "remove", "gamma", "--json"), {0})
        assert isinstance(removed, dict)

    def test_daemon_restart_json(self, daemon: DaemonProcess) -> None:
        """daemon restart --json: the new image's pid and version, and which agents kept their pids."""
        assert daemon.proc is not None
        data = _one_document(eyriectl(daemon.home, "daemon", "restart", "--json"), {0})
        assert isinstance(data, dict)
        assert data["pid"] == daemon.proc.pid and {"alpha", "beta"} <= set(data["kept"])
        assert data["changed"] == {} and data["seconds"] > 0


class TestOffline:
    def test_json_carries_text_as_written(self, tmp_path: Path) -> None:
        """A goal with an emoji code and markup comes out of projects --json as written, not rendered."""
        goal = "Land :rocket: [b]soon[/b]"
        fleet = FLEET.replace(
            "instances:", f'projects:\n  apollo: {{name: Apollo, goal: "{goal}"}}\ninstances:', 1
        )
        (tmp_path / "fleet.yaml").write_text(fleet)
        projects = _one_document(eyriectl(tmp_path, "projects", "--json"), {0})
        assert isinstance(projects, list) and [p["goal"] for p in projects] == [goal]

    def test_every_json_command_prints_one_document_with_the_daemon_down(self, tmp_path: Path) -> None:
        """With no eyried, the commands that answer from disk still print one parsable document, and the
        store's warning about the torn file reaches stderr only."""
        (tmp_path / "fleet.yaml").write_text(FLEET)
        _tear(tmp_path)
        results = eyriectl_many(tmp_path, [args for args, _ in OFFLINE])
        for (_, codes), result in zip(OFFLINE, results, strict=True):
            _one_document(result, codes)
        ps_result = results[0]
        assert TORN_ID in ps_result.stderr and TORN_ID not in ps_result.stdout
        assert {row["name"] for row in json.loads(ps_result.stdout)} == {"alpha", "beta"}
