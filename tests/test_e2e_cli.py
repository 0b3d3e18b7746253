"""eyriectl end to end, read-only: the real CLI against a real eyried shared by the checks that change nothing
(a fleet straight from ``eyriectl init``; a standalone fleet with an instance that cannot be provisioned).
Tests that change the fleet start their own daemon (test_e2e_cli_edits, test_e2e_cli_lifecycle)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.fleet import load_fleet
from supervisor.models import CreateRequest
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.store import Store
from tests._cli import eyriectl, eyriectl_many, ok, ps
from tests._daemon import DaemonProcess, embedded, fleet_yaml, pid_alive
from tests._other_user import eyriectl_as_nobody

GENERAL = {
    "chief": ("commander", "", ""),
    "ops-lead": ("captain", "operations", "chief"),
    "ops-hand": ("talon", "operations", "ops-lead"),
    "research-lead": ("captain", "research", "chief"),
    "research-hand": ("talon", "research", "research-lead"),
}
PS_KEYS = ("name", "id", "framework", "status", "pid", "port", "restart_count", "health_status", "flags")


@contextlib.contextmanager
def _open_dir() -> Iterator[Path]:
    """A scratch dir other users may traverse (pytest's own temp root is owner-only), removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="eyrie-e2e-"))
    try:
        scratch.chmod(0o711)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _pids(daemon: DaemonProcess) -> dict[str, int]:
    """Name → pid of every instance recorded running with a live pid."""
    return {
        name: inst["pid"]
        for name, inst in daemon.instances().items()
        if inst.get("status") == "running" and pid_alive(inst.get("pid"))
    }


@pytest.fixture(scope="module")
def general() -> Iterator[DaemonProcess]:
    """``eyriectl init`` (general profile, untouched), then eyried on it, every instance running."""
    with _open_dir() as scratch:
        home = scratch / "home"
        ok(eyriectl(home, "init", "--profile", "general"))
        daemon = DaemonProcess(home)
        try:
            daemon.start()
            daemon.wait_serving()
            daemon.wait_running(*GENERAL)
            yield daemon
        finally:
            daemon.close()


class TestInitFleet:
    def test_init_then_eyried_runs_it_as_is(self, general: DaemonProcess) -> None:
        """A fresh `init` runs unchanged: every profile instance running with its role and no flag."""
        rows = ps(general.home)
        assert list(rows) == list(GENERAL)
        for name, (role, project, parent) in GENERAL.items():
            row = rows[name]
            assert (row["status"], row["framework"], row["hierarchy_role"]) == ("running", "embedded", role)
            assert row["flags"] == [] and row["autostart"] is True
            assert pid_alive(row["pid"]) and 43000 <= row["port"] <= 43999
            decl = next(d for d in load_fleet(general.fleet_file).instances if d.name == name)
            assert (decl.project, decl.parent) == (project, parent)

    def test_ps_json_and_list(self, general: DaemonProcess) -> None:
        """ps --json and list --json print the same objects, with the instance keys, flags and no secret."""
        ps_out, list_out = (
            ok(r).stdout for r in eyriectl_many(general.home, [["ps", "--json"], ["list", "--json"]])
        )
        rows = json.loads(ps_out)
        assert [r["name"] for r in json.loads(list_out)] == [r["name"] for r in rows]
        for row in rows:
            assert all(key in row for key in PS_KEYS), row
            assert row["health_status"] in ("healthy", "unknown")
            assert "auth_token" not in row

    def test_ps_table(self, general: DaemonProcess) -> None:
        """ps prints the header and one row per instance: role, status, pid, port, restarts, flags."""
        lines = ok(eyriectl(general.home, "ps")).stdout.splitlines()
        assert lines[0].split() == [
            "NAME", "FRAMEWORK", "ROLE", "STATUS", "HEALTH", "PID", "PORT", "UPTIME", "RESTARTS", "CPU",
            "MEM", "SANDBOX", "FLAGS",
        ]  # fmt: skip
        recorded = general.instances()
        for name, (role, _, _) in GENERAL.items():
            line = next(line for line in lines[1:] if line.split()[0] == name)
            assert line.split()[1:4] == ["embedded", role, "running"]
            assert {str(recorded[name]["pid"]), str(recorded[name]["port"])} <= set(line.split())
            assert line.rstrip().endswith("-")

    def test_status(self, general: DaemonProcess) -> None:
        """status shows pid, version, uptime, home, fleet file, counts and the last reload's result."""
        ok(eyriectl(general.home, "reload"))
        text, as_json = (
            ok(r).stdout for r in eyriectl_many(general.home, [["status"], ["status", "--json"]])
        )
        assert general.proc is not None
        assert re.match(rf"eyried \d+\.\d+\.\d+\S*, pid {general.proc.pid}, up \d+", text)
        assert f"home:        {general.home}\n" in text
        assert f"fleet file:  {general.fleet_file}\n" in text
        assert "instances:   5 running" in text
        assert re.search(r"last reload: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ok", text)
        data = json.loads(as_json)
        assert data["pid"] == general.proc.pid and data["home"] == str(general.home)
        assert data["instances"] == {"running": 5} and data["last_reload"]["ok"] is True
        assert data["uptime_seconds"] > 0 and data["version"]

    def test_reload_without_change(self, general: DaemonProcess) -> None:
        """reload of an unchanged file prints an empty diff and touches no process."""
        before = _pids(general)
        out = ok(eyriectl(general.home, "reload")).stdout
        assert re.match(r"reloaded in \d+ ms\n  unchanged: 5\n$", out), out
        data = json.loads(ok(eyriectl(general.home, "reload", "--json")).stdout)
        assert data["ok"] and sorted(data["unchanged"]) == sorted(GENERAL)
        assert not (data["added"] or data["removed"] or data["restarted"] or data["updated"])
        assert _pids(general) == before

    def test_reload_of_a_broken_file_changes_nothing(self, general: DaemonProcess) -> None:
        """A syntax error or a parent cycle: reload exits 1 with the reason, the fleet runs on untouched."""
        good = general.fleet_file.read_text()
        before = _pids(general)
        cycle = good + (
            "  - name: loop-a\n    framework: embedded\n    parent: loop-b\n"
            "  - name: loop-b\n    framework: embedded\n    parent: loop-a\n"
        )
        syntax = good.replace("  - name: ops-hand\n", "  - name: ops-hand\n    model: [oops\n", 1)
        try:
            general.write_fleet(syntax)
            broken = eyriectl(general.home, "reload")
            assert broken.returncode == 1 and broken.stdout == ""
            assert "reload rejected, nothing changed" in broken.stderr
            assert re.search(rf"{re.escape(str(general.fleet_file))}:\d+", broken.stderr), broken.stderr
            general.write_fleet(cycle)
            looped = eyriectl(general.home, "reload")
            assert looped.returncode == 1 and "cycle: loop-a → loop-b → loop-a" in looped.stderr
            status = eyriectl(general.home, "status")
            assert status.returncode == 4 and "last reload" in status.stdout and "rejected" in status.stdout
        finally:
            general.write_fleet(good)
            ok(eyriectl(general.home, "reload"))
        assert _pids(general) == before

    def test_add_refuses_each_hierarchy_violation(self, general: DaemonProcess) -> None:
        """add refuses every hierarchy violation with a message naming the instances; nothing changes."""
        cases = {
            "a second commander": (
                ["boss-two", "--role", "commander"],
                "exactly one commander is allowed; found 2: 'chief', 'boss-two'",
            ),
            "two captains in one project": (
                ["ops-lead-two", "--role", "captain", "--project", "operations", "--parent", "chief"],
                "project 'operations' has 2: 'ops-lead', 'ops-lead-two'",
            ),
            "a talon without parent": (
                ["lone", "--role", "talon", "--project", "operations"],
                "talon 'lone' has no parent",
            ),
            "a talon under a non-captain": (
                ["under-chief", "--role", "talon", "--project", "operations", "--parent", "chief"],
                "talon 'under-chief' has parent 'chief', a commander",
            ),
            "a talon under another project's captain": (
                ["stray", "--role", "talon", "--project", "research", "--parent", "ops-lead"],
                "talon 'stray' (project 'research') has parent 'ops-lead' from another project",
            ),
            "a parent that does not exist": (
                ["orphan", "--parent", "ghost"],
                "instance 'orphan' has parent 'ghost', which is not declared",
            ),
        }
        before = general.fleet_file.read_bytes()
        results = eyriectl_many(
            general.home,
            [["add", args[0], "--framework", "embedded", *args[1:]] for args, _ in cases.values()],
        )
        for (what, (_, message)), result in zip(cases.items(), results, strict=True):
            assert result.returncode == 1, (what, result.stdout, result.stderr)
            assert message in result.stderr, (what, result.stderr)
        assert general.fleet_file.read_bytes() == before
        assert sorted(general.instances()) == sorted(GENERAL)

    def test_logs(self, general: DaemonProcess) -> None:
        """logs NAME -n N prints the agent's last N lines; an unknown name exits 1."""
        port = general.instance("chief")["port"]
        one, none, unknown = eyriectl_many(
            general.home,
            [["logs", "chief", "-n", "1"], ["logs", "chief", "-n", "0"], ["logs", "nobody-here"]],
        )
        assert ok(one).stdout == f"EMBEDDED_READY port={port}\n"
        assert ok(none).stdout == ""
        assert unknown.returncode == 1 and "nobody-here" in unknown.stderr

    def test_migrate(self, general: DaemonProcess) -> None:
        """migrate --dry-run reports every instance up to date; a real migrate refuses while eyried runs."""
        dry, real = eyriectl_many(general.home, [["migrate", "--dry-run"], ["migrate"]])
        assert sorted(ok(dry).stdout.splitlines()) == sorted(f"{name}: up to date" for name in GENERAL)
        assert general.proc is not None
        assert real.returncode == 1 and f"(pid {general.proc.pid}); stop it before migrating" in real.stderr


@pytest.fixture(scope="module")
def nobody_eyriectl() -> Iterator[tuple[str, ...]]:
    """``eyriectl`` as user nobody, from wherever nobody can reach it."""
    with eyriectl_as_nobody() as argv:
        yield argv


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="running a client as nobody needs root"
)
class TestOwnerOnlySocket:
    def test_other_user_is_refused(self, general: DaemonProcess, nobody_eyriectl: tuple[str, ...]) -> None:
        """A client run as nobody is refused by the socket's modes: exit 1, and nothing happens."""
        calls = [["status"], ["stop", "--all"]]
        results = eyriectl_many(general.home, calls, program=nobody_eyriectl)
        for result in results:
            assert result.returncode == 1, result
            assert f"permission denied on {general.home}/run/eyried.sock" in result.stderr
        assert _pids(general).keys() == GENERAL.keys()

    def test_other_user_is_refused_with_loosened_modes(
        self, general: DaemonProcess, nobody_eyriectl: tuple[str, ...]
    ) -> None:
        """With the socket opened to everyone, the daemon's peer-uid check still refuses nobody."""
        run_dir, sock = general.home / "run", general.home / "run" / "eyried.sock"
        modes = {path: path.stat().st_mode & 0o777 for path in (general.home, run_dir, sock)}
        try:
            general.home.chmod(0o755)
            run_dir.chmod(0o755)
            sock.chmod(0o666)
            results = eyriectl_many(general.home, [["status"], ["stop", "--all"]], program=nobody_eyriectl)
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        for result in results:
            assert result.returncode == 1, result
            assert "closed the connection" in result.stderr and "owner's uid" in result.stderr
        assert '"peer_uid": 65534' in general.log()
        assert _pids(general).keys() == GENERAL.keys()


STANDALONE = fleet_yaml(embedded("alpha"), embedded("beta"), embedded("ghost", "persona: nosuch"))


@pytest.fixture(scope="class")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """eyried on alpha and beta (running) and ghost, whose persona does not exist."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("standalone"))
    daemon.write_fleet(STANDALONE)
    try:
        daemon.start()
        daemon.wait_serving()
        daemon.wait_running("alpha", "beta")
        yield daemon
    finally:
        daemon.close()


class TestStandaloneFleet:
    def test_missing_when_it_cannot_be_provisioned(self, standalone: DaemonProcess) -> None:
        """A declared instance the daemon could not provision is MISSING, with the reason in ps and status."""
        rows = ps(standalone.home)
        assert rows["ghost"]["flags"] == ["MISSING"] and rows["ghost"]["pid"] is None
        assert "persona 'nosuch' not found" in rows["ghost"]["last_error"]
        assert rows["alpha"]["flags"] == [] and rows["beta"]["flags"] == []
        table, status = eyriectl_many(standalone.home, [["ps"], ["status"]])
        ghost_row = next(line for line in ok(table).stdout.splitlines() if line.startswith("ghost "))
        assert ghost_row.rstrip().endswith("MISSING")
        assert "ghost: persona 'nosuch' not found" in ok(table).stdout
        assert status.returncode == 4, status  # degraded: ghost is declared to run and cannot
        assert "  - ghost: persona 'nosuch' not found" in status.stdout

    def test_orphan_provisioned_by_the_library(self, standalone: DaemonProcess) -> None:
        """An instance provisioned behind the daemon's back is ORPHAN, and left out of start --all."""
        store = Store(Home(standalone.home))
        stray = Provisioner(store, Home(standalone.home)).provision(
            CreateRequest(name="stray", framework="embedded")
        )
        try:
            row = ps(standalone.home)["stray"]
            assert (row["flags"], row["status"], row["id"]) == (["ORPHAN"], "created", stray.id)
            table, started = eyriectl_many(standalone.home, [["ps"], ["start", "--all", "--wait"]])
            line = next(line for line in ok(table).stdout.splitlines() if "stray" in line)
            assert line.rstrip().endswith("ORPHAN")
            assert [line.split(":")[0] for line in ok(started).stdout.splitlines()] == ["alpha", "beta"]
        finally:
            Provisioner(store, Home(standalone.home)).deprovision(stray.id, purge=True)

    def test_add_that_cannot_be_provisioned_changes_no_file(self, standalone: DaemonProcess) -> None:
        """add with an unknown persona fails with the reason, and the declaration is taken back out."""
        before = standalone.fleet_file.read_bytes()
        result = eyriectl(standalone.home, "add", "newbie", "--framework", "embedded", "--persona", "nosuch")
        assert result.returncode == 1
        assert "persona 'nosuch' not found" in result.stderr
        assert standalone.fleet_file.read_bytes() == before
        assert "newbie" not in ps(standalone.home)

    def test_add_refuses_a_role_without_commander(self, standalone: DaemonProcess) -> None:
        """In a fleet without commander, add of a captain is refused naming it; the file is unchanged."""
        before = standalone.fleet_file.read_bytes()
        result = eyriectl(standalone.home, "add", "cap", "--framework", "embedded", "--role", "captain")
        assert result.returncode == 1
        assert "instances with a role ('cap') need exactly one commander; there is none" in result.stderr
        assert standalone.fleet_file.read_bytes() == before

    def test_bad_names(self, standalone: DaemonProcess) -> None:
        """Unknown and taken names exit 1 naming them; a name that is not a slug is a usage error (2)."""
        before = standalone.fleet_file.read_bytes()
        unknown, taken, bad = eyriectl_many(
            standalone.home,
            [["stop", "nope", "--wait"], ["add", "alpha", "--framework", "embedded"], ["add", "BadName"]],
        )
        assert unknown.returncode == 1 and "'nope'" in unknown.stderr, unknown
        assert taken.returncode == 1 and "'alpha'" in taken.stderr, taken
        assert bad.returncode == 2 and "uppercase" in bad.stderr, bad
        assert standalone.fleet_file.read_bytes() == before
        assert sorted(standalone.instances()) == ["alpha", "beta"]

    def test_enable_disable(self, standalone: DaemonProcess) -> None:
        """disable sets autostart false and flags running instances DISABLED; enable undoes it; pids stay."""
        d = standalone
        pids = _pids(d)
        try:
            out = ok(eyriectl(d.home, "disable", "alpha", "beta")).stdout
            assert out == "alpha: autostart off\nbeta: autostart off\n"
            assert ok(eyriectl(d.home, "enable", "alpha")).stdout == "alpha: autostart on\n"
            rows = ps(d.home)
            assert (rows["alpha"]["flags"], rows["beta"]["flags"]) == ([], ["DISABLED"])
            assert {decl.name: decl.autostart for decl in load_fleet(d.fleet_file).instances} == {
                "alpha": True, "beta": False, "ghost": True,
            }  # fmt: skip
        finally:
            ok(eyriectl(d.home, "enable", "beta"))
        assert all(decl.autostart for decl in load_fleet(d.fleet_file).instances)
        assert _pids(d) == pids
