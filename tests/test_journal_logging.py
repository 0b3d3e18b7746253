"""eyried's own log lines, from a real daemon: syslog priorities when stderr is the journal, plain JSON
otherwise, and ``daemon.log_level`` from the fleet file, at start and on reload, under the flag's rule."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._cli import eyriectl, ok
from tests._daemon import DaemonProcess, embedded, fleet_yaml, wait_for

PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 3}
PREFIXED = re.compile(r"^<(\d)>(\{.*\})$")


def _broken() -> str:
    return embedded("broken", "command: [/nonexistent/agent]\nrestart: {policy: never}")


@contextlib.contextmanager
def _daemon(home: Path, fleet: str, *args: str, journal: bool = False) -> Iterator[DaemonProcess]:
    """eyried with its stderr on a file; with ``journal``, ``JOURNAL_STREAM`` names that file."""
    d = DaemonProcess(home)
    d.write_fleet(fleet)
    d.output.touch()
    st = os.stat(d.output)
    env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"} if journal else {"JOURNAL_STREAM": "1:1"}
    try:
        d.start(*args, env=env)
        d.wait_serving()
        yield d
    finally:
        d.close()


def _with_daemon(settings: str) -> str:
    return fleet_yaml(embedded("alpha")).replace("version: 1\n", f"version: 1\ndaemon: {settings}\n", 1)


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


class TestJournal:
    def test_lines_carry_their_priority_when_stderr_is_the_journal(self, tmp_path: Path) -> None:
        """With JOURNAL_STREAM naming stderr, every line is ``<N>`` and a JSON object whose level gives N:
        ``<6>`` for info, ``<4>`` for a warning (a failed start), ``<3>`` for an error (an instance moving
        into error, a rejected reload)."""
        with _daemon(tmp_path, fleet_yaml(embedded("alpha"), _broken()), journal=True) as d:
            d.wait_running("alpha")
            d.wait_status("broken", "error")
            d.write_fleet("version: 1\ninstances: [\n")
            eyriectl(tmp_path, "reload")
            wait_for(lambda: '<3>{"error"' in d.log(), what="the rejected reload's line")
            text = d.log()
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines
        for line in lines:
            match = PREFIXED.match(line)
            assert match, f"not a prefixed JSON line: {line!r}"
            record = json.loads(match.group(2))
            assert int(match.group(1)) == PRIORITY[record["level"]], line
        assert any(line.startswith('<6>{"') and "daemon_ready" in line for line in lines)
        assert any(line.startswith("<4>") and "start_failed" in line for line in lines)
        assert any(line.startswith("<3>") and '"to_status": "error"' in line for line in lines)

    def test_plain_json_when_stderr_is_not_the_journal(self, tmp_path: Path) -> None:
        """A JOURNAL_STREAM that names another file (a child's inherited one) leaves plain JSON lines."""
        with _daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            wait_for(lambda: "daemon_ready" in d.log(), what="daemon_ready")
            text = d.log()
        assert not re.search(r"^<\d>", text, re.MULTILINE)
        assert any(r["event"] == "daemon_ready" for r in _records(text))


class TestLogLevel:
    @pytest.mark.parametrize("reload_by", ["eyriectl", "sighup"])
    def test_reload_changes_the_level(self, tmp_path: Path, reload_by: str) -> None:
        """``daemon.log_level: warning`` silences info lines from the start; a reload to ``info`` brings
        them back without a restart."""
        quiet = _with_daemon("{log_level: warning}")
        with _daemon(tmp_path, quiet) as d:
            d.wait_running("alpha")
            assert not any(r["level"] == "info" for r in _records(d.log()))
            d.write_fleet(quiet.replace("log_level: warning", "log_level: INFO"))
            if reload_by == "eyriectl":
                ok(eyriectl(tmp_path, "reload"))
            else:
                d.signal(signal.SIGHUP)
            ok(eyriectl(tmp_path, "restart", "alpha", "--wait"))
            wait_for(
                lambda: any(r["level"] == "info" for r in _records(d.log())), what="info lines after reload"
            )

    def test_flag_overrides_the_file(self, tmp_path: Path) -> None:
        """``--log-level warning`` wins over the file's ``debug``, at start and after a reload."""
        loud = _with_daemon("{log_level: debug}")
        with _daemon(tmp_path, loud, "--log-level", "warning") as d:
            d.wait_running("alpha")
            ok(eyriectl(tmp_path, "reload"))
            ok(eyriectl(tmp_path, "restart", "alpha", "--wait"))
            d.wait_running("alpha")
            levels = {r["level"] for r in _records(d.log())}
        assert levels <= {"warning", "error", "critical"}, levels


JOURNAL_SOCKET = Path("/run/systemd/journal/stdout")


@pytest.mark.systemd
@pytest.mark.skipif(
    not JOURNAL_SOCKET.is_socket(),
    reason="journald is not running here (no /run/systemd/journal/stdout); TestJournal checks the prefixes"
    " against a file that JOURNAL_STREAM names instead",
)
def test_journalctl_priority_filters(tmp_path: Path) -> None:
    """Installed under a real systemd --user with its output on the journal, ``journalctl -p err`` shows
    the instance that moved into error and none of eyried's info lines."""
    from supervisor.systemd.names import unit_name
    from tests.sandbox.systemd import user_manager

    with user_manager(tmp_path) as manager:
        home = tmp_path / "eyrie"
        home.mkdir()
        (home / "fleet.yaml").write_text(fleet_yaml(embedded("alpha"), _broken()))
        name = unit_name(home, manager.env)
        dropin = manager.unit_dir / f"{name}.d"
        dropin.mkdir(parents=True)
        (dropin / "journal.conf").write_text("[Service]\nStandardOutput=journal\nStandardError=journal\n")
        ok(eyriectl(home, "install", "--no-linger", env=manager.env, timeout=120))

        def journal(*args: str) -> list[dict[str, Any]]:
            out = subprocess.run(
                ["journalctl", "--no-pager", "-o", "json", f"_SYSTEMD_USER_UNIT={name}", *args],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

        errors = wait_for(
            lambda: [e for e in journal("-p", "err") if '"to_status": "error"' in e.get("MESSAGE", "")],
            what="the instance's move into error in the journal",
        )
        assert all(int(e["PRIORITY"]) <= 3 for e in journal("-p", "err"))
        assert errors[0]["MESSAGE"].startswith("{") and "daemon_ready" not in str(journal("-p", "err"))
        ok(eyriectl(home, "uninstall", env=manager.env, timeout=120))
