"""eyriectl as a real subprocess, no daemon: exit codes, offline fleet edits, ps from disk, logs, migrate."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.fleet import PROFILES, load_fleet
from supervisor.models import CreateRequest, Instance
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.store import Store
from supervisor.systemd.names import unit_name

EYRIECTL = Path(sys.executable).parent / "eyriectl"
OFFLINE = "eyried is not running; the change applies at its next start"

COMMENTED_FLEET = """\
# My fleet. Hand-written: every comment here must survive eyriectl's edits.
version: 1

defaults:
  restart: {policy: on-failure, initial_delay: 1s}   # inline comment on restart
  stop_timeout: 5s    # short, for tests

instances:
  # the one in charge
  - name: boss
    framework: embedded
    role: commander   # exactly one commander
    autostart: true

  # a standalone helper
  - name: helper
    framework: embedded    # embedded needs no key
    autostart: true        # comes back after a reboot
# trailing comment at the end of the file
"""


def eyriectl(home: Home, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EYRIECTL), "--home", str(home.root), *args], capture_output=True, text=True, timeout=timeout
    )


def eyriectl_all(home: Home, calls: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess[str]]:
    """Run several independent invocations at once (each one starts a fresh interpreter)."""
    procs = [
        subprocess.Popen(
            [str(EYRIECTL), "--home", str(home.root), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in calls
    ]
    results = []
    for args, proc in zip(calls, procs, strict=True):
        out, err = proc.communicate(timeout=30)
        results.append(subprocess.CompletedProcess(list(args), proc.returncode, out, err))
    return results


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(line == hay for hay in it) for line in needles)


@pytest.fixture
def fleet(home: Home) -> Path:
    home.fleet_file.write_text(COMMENTED_FLEET)
    return home.fleet_file


def _provision(home: Home, name: str) -> Instance:
    return Provisioner(Store(home), home).provision(CreateRequest(name=name, framework="embedded"))


class TestExitCodes:
    def test_daemon_commands_exit_3(self, home: Home) -> None:
        """Commands that need the daemon exit 3 and say how to start it."""
        calls = [
            ("status",),
            ("start", "boss"),
            ("stop", "--all"),
            ("reload",),
            ("events",),
            ("restart", "x", "--wait"),
        ]
        unit = unit_name(home.root, os.environ)
        for result in eyriectl_all(home, calls):
            assert result.returncode == 3, (result.args, result.stderr)
            assert f"eyried is not running for {home.root}" in result.stderr
            assert f"systemctl --user start {shlex.quote(unit)}" in result.stderr and result.stdout == ""

    def test_usage_errors_exit_2(self, home: Home) -> None:
        """An unknown command, a missing or contradictory argument, or a bad name is a usage error (2)."""
        calls = [
            ("frobnicate",),
            ("start",),
            ("start", "a", "--all"),
            ("add", "Bad Name", "--framework", "embedded"),
        ]
        for result in eyriectl_all(home, calls):
            assert result.returncode == 2, (result.args, result.stderr)

    def test_failure_exits_1(self, home: Home, fleet: Path) -> None:
        """A failure the user can fix exits 1 with a message: here, enabling an undeclared instance."""
        result = eyriectl(home, "enable", "ghost")
        assert result.returncode == 1 and "ghost" in result.stderr

    def test_help_lists_exit_codes(self, home: Home) -> None:
        """The top-level help documents the exit codes."""
        result = eyriectl(home, "--help")
        assert result.returncode == 0
        assert "3  eyried is not running" in result.stdout and "2  usage error" in result.stdout


class TestInit:
    def test_profiles(self, tmp_path: Path) -> None:
        """Each profile writes a valid, commented fleet file of embedded instances."""
        homes = {profile: Home(tmp_path / profile) for profile in PROFILES}
        procs = {
            profile: subprocess.Popen(
                [str(EYRIECTL), "--home", str(h.root), "init", "--profile", profile], stderr=subprocess.PIPE
            )
            for profile, h in homes.items()
        }
        for profile, proc in procs.items():
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            fleet = load_fleet(homes[profile].fleet_file)
            assert fleet.instances and {d.framework for d in fleet.instances} == {"embedded"}
            assert "#" in homes[profile].fleet_file.read_text()
            roles = {d.role.value for d in fleet.instances}
            assert roles == {""} if profile == "minimal" else "commander" in roles

    def test_framework_and_force(self, home: Home) -> None:
        """An existing file is kept without --force (exit 1); --force rewrites it with --framework applied."""
        assert eyriectl(home, "init", "--profile", "minimal").returncode == 0
        before = home.fleet_file.read_text()
        refused = eyriectl(home, "init", "--profile", "general", "--framework", "zeroclaw")
        assert refused.returncode == 1 and "--force" in refused.stderr
        assert home.fleet_file.read_text() == before
        forced = eyriectl(home, "init", "--profile", "general", "--framework", "zeroclaw", "--force")
        assert forced.returncode == 0, forced.stderr
        assert {d.framework for d in load_fleet(home.fleet_file).instances} == {"zeroclaw"}


class TestOfflineEdits:
    def test_add_keeps_comments(self, home: Home, fleet: Path) -> None:
        """add with the daemon down appends the instance, keeps every line as it was, and says so."""
        result = eyriectl(home, "add", "scout", "--framework", "embedded", "--no-enable")
        assert result.returncode == 0, result.stderr
        assert OFFLINE in result.stderr
        assert _is_subsequence(COMMENTED_FLEET.splitlines(), fleet.read_text().splitlines())
        scout = load_fleet(fleet).decl("scout")
        assert scout.framework == "embedded" and scout.autostart is False

    def test_concurrent_adds_lose_nothing(self, home: Home, fleet: Path) -> None:
        """Four eyriectl processes adding at the same moment all land in the file, comments intact."""
        names = [f"worker-{i}" for i in range(4)]
        results = eyriectl_all(home, [("add", name, "--framework", "embedded") for name in names])
        assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
        declared = load_fleet(fleet).names()
        assert declared[:2] == ["boss", "helper"] and sorted(declared[2:]) == names
        assert _is_subsequence(COMMENTED_FLEET.splitlines(), fleet.read_text().splitlines())

    def test_add_refused_by_hierarchy(self, home: Home, fleet: Path) -> None:
        """A second commander is refused with a message naming both, and the file is untouched."""
        result = eyriectl(home, "add", "boss2", "--framework", "embedded", "--role", "commander")
        assert result.returncode == 1 and "boss" in result.stderr and "boss2" in result.stderr
        assert fleet.read_text() == COMMENTED_FLEET

    def test_enable_disable_keep_comments(self, home: Home, fleet: Path) -> None:
        """disable flips only that instance's autostart line; enable flips it back to the original text."""
        result = eyriectl(home, "disable", "helper")
        assert result.returncode == 0 and OFFLINE in result.stderr
        changed = [
            (a, b)
            for a, b in zip(COMMENTED_FLEET.splitlines(), fleet.read_text().splitlines(), strict=True)
            if a != b
        ]
        assert len(changed) == 1 and "false" in changed[0][1] and "# comes back" in changed[0][1]
        assert eyriectl(home, "enable", "helper").returncode == 0
        assert fleet.read_text() == COMMENTED_FLEET

    def test_remove_moves_files_to_the_trash(self, home: Home, fleet: Path) -> None:
        """remove drops the entry (only its lines) and moves the directory to the trash, memory and all."""
        inst = _provision(home, "helper")
        (Store(home).dir(inst.id) / "workspace" / "memory" / "notes.md").write_text("remember me\n")
        result = eyriectl(home, "remove", "helper")
        assert result.returncode == 0, result.stderr
        assert OFFLINE in result.stderr and "eyriectl trash restore helper" in result.stderr
        assert load_fleet(fleet).names() == ["boss"]
        assert "# the one in charge" in fleet.read_text() and "# trailing comment" in fleet.read_text()
        assert not Store(home).dir(inst.id).exists()
        (entry,) = (home.root / "removed").glob(f"helper-{inst.id}-*Z")
        assert (entry / "workspace" / "memory" / "notes.md").read_text() == "remember me\n"

    @pytest.mark.parametrize("flag", ["--keep-files", None])
    def test_keep_files_is_the_default(self, home: Home, fleet: Path, flag: str | None) -> None:
        """remove --keep-files does what remove does: the directory goes to the trash."""
        inst = _provision(home, "helper")
        assert eyriectl(home, "remove", "helper", *([flag] if flag else [])).returncode == 0
        assert len(list((home.root / "removed").glob(f"helper-{inst.id}-*Z"))) == 1

    def test_remove_purge(self, home: Home, fleet: Path) -> None:
        """remove --purge deletes the directory and puts nothing in the trash."""
        inst = _provision(home, "helper")
        result = eyriectl(home, "remove", "helper", "--purge", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"removed": "helper", "purged": True, "trash": None}
        assert not Store(home).dir(inst.id).exists() and not (home.root / "removed").exists()

    def test_purge_and_keep_files_is_a_usage_error(self, home: Home, fleet: Path) -> None:
        """--purge with --keep-files exits 2 and changes nothing."""
        inst = _provision(home, "helper")
        result = eyriectl(home, "remove", "helper", "--purge", "--keep-files")
        assert result.returncode == 2 and "contradict" in result.stderr
        assert fleet.read_text() == COMMENTED_FLEET and Store(home).dir(inst.id).exists()

    def test_remove_refuses_under_a_live_process(self, home: Home, fleet: Path) -> None:
        """An instance whose process still runs is not removed while the daemon is down."""
        inst = _provision(home, "helper")
        env = {**os.environ, "EYRIE_INSTANCE_ID": inst.id}
        with subprocess.Popen(["sleep", "30"], env=env) as child:
            try:
                Store(home).update(inst.id, lambda i: setattr(i, "pid", child.pid))
                result = eyriectl(home, "remove", "helper")
            finally:
                child.kill()
        assert result.returncode == 1 and f"pid {child.pid}" in result.stderr
        assert fleet.read_text() == COMMENTED_FLEET and Store(home).dir(inst.id).exists()

    def test_remove_unknown(self, home: Home, fleet: Path) -> None:
        """Removing a name that is neither declared nor provisioned fails with exit 1."""
        result = eyriectl(home, "remove", "ghost")
        assert result.returncode == 1 and "ghost" in result.stderr


class TestPsFromDisk:
    def test_json_shape_and_flags(self, home: Home, fleet: Path) -> None:
        """ps --json with the daemon down lists declared and provisioned instances with flags, and exits 3."""
        _provision(home, "helper")
        _provision(home, "stray")
        result = eyriectl(home, "ps", "--json")
        assert result.returncode == 3 and "recorded on disk" in result.stderr
        rows = {row["name"]: row for row in json.loads(result.stdout)}
        assert set(rows) == {"boss", "helper", "stray"}
        assert rows["boss"]["flags"] == ["MISSING"] and rows["stray"]["flags"] == ["ORPHAN"]
        helper = rows["helper"]
        assert helper["flags"] == [] and helper["status"] == "created" and helper["port"] >= 43000
        for key in ("name", "id", "framework", "status", "pid", "port", "restart_count", "health_status"):
            assert key in helper
        assert "auth_token" not in result.stdout and Store(home).token(helper["id"]) not in result.stdout

    def test_table(self, home: Home, fleet: Path) -> None:
        """ps prints the table header and one row per instance."""
        result = eyriectl(home, "list")
        header = result.stdout.splitlines()[0].split()
        assert header == [
            "NAME",
            "FRAMEWORK",
            "ROLE",
            "STATUS",
            "HEALTH",
            "PID",
            "PORT",
            "UPTIME",
            "RESTARTS",
            "CPU",
            "MEM",
            "SANDBOX",
            "FLAGS",
        ]
        assert any(line.split()[0] == "boss" and "MISSING" in line for line in result.stdout.splitlines()[1:])


def _read_until(proc: subprocess.Popen[bytes], needle: bytes, seen: bytearray, timeout: float = 5) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {needle!r} in output: {bytes(seen)!r}"
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"eyriectl exited before printing {needle!r}: {bytes(seen)!r}"
            seen.extend(chunk)


@pytest.fixture
def follower(home: Home, fleet: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    inst = _provision(home, "helper")
    log = Store(home).dir(inst.id) / "logs" / "embedded.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(1, 101)))
    with subprocess.Popen(
        [str(EYRIECTL), "--home", str(home.root), "logs", "helper", "-f", "-n", "2"], stdout=subprocess.PIPE
    ) as proc:
        try:
            yield log, proc
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=5)


class TestLogs:
    def test_last_lines(self, home: Home, fleet: Path) -> None:
        """logs -n N prints exactly the last N lines of the instance's log file."""
        inst = _provision(home, "helper")
        log = Store(home).dir(inst.id) / "logs" / "embedded.log"
        log.write_bytes(b"".join(b"line %d\n" % i for i in range(1, 10001)))
        result = eyriectl(home, "logs", "helper", "-n", "3")
        assert result.returncode == 0 and result.stdout == "line 9998\nline 9999\nline 10000\n"

    def test_no_log_yet(self, home: Home, fleet: Path) -> None:
        """An instance that never ran has no log: a note, exit 0."""
        _provision(home, "helper")
        result = eyriectl(home, "logs", "helper")
        assert result.returncode == 0 and "no log yet" in result.stderr

    def test_unknown_instance(self, home: Home) -> None:
        """logs for an unknown name exits 1 naming it."""
        result = eyriectl(home, "logs", "ghost")
        assert result.returncode == 1 and "ghost" in result.stderr

    def test_follow_across_rotation(self, follower: tuple[Path, subprocess.Popen[bytes]]) -> None:
        """-f prints new lines, finishes the rotated file, then reads the new one and survives truncation."""
        log, proc = follower
        seen = bytearray()
        _read_until(proc, b"line 99\nline 100\n", seen)
        assert b"line 98\n" not in seen
        with log.open("ab") as f:
            f.write(b"appended\n")
        _read_until(proc, b"appended\n", seen)
        rotated = log.with_name("embedded.log.1")
        log.rename(rotated)
        with rotated.open("ab") as f:
            f.write(b"late write to the old file\n")
        log.write_bytes(b"first line of the new file\n")
        _read_until(proc, b"first line of the new file\n", seen)
        assert seen.index(b"late write") < seen.index(b"first line of the new file")
        log.write_bytes(b"")
        with log.open("ab") as f:
            f.write(b"after truncation\n")
        _read_until(proc, b"after truncation\n", seen)


class TestMigrate:
    def test_dry_run_and_run(self, home: Home) -> None:
        """migrate --dry-run and migrate report one result per instance as JSON."""
        _provision(home, "helper")
        for args in (("migrate", "--dry-run", "--json"), ("migrate", "--json")):
            result = eyriectl(home, *args)
            assert result.returncode == 0, result.stderr
            assert [r["instance_name"] for r in json.loads(result.stdout)] == ["helper"]

    def test_refused_while_daemon_holds_its_lock(self, home: Home) -> None:
        """A real migration refuses while eyried runs (its lock is held); a dry run still works."""
        home.ensure_run_dir()
        home.pid_file.write_text("4321\n")
        fd = os.open(home.daemon_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            refused = eyriectl(home, "migrate")
            assert refused.returncode == 1 and "pid 4321" in refused.stderr
            assert eyriectl(home, "migrate", "--dry-run").returncode == 0
        finally:
            os.close(fd)
