"""``eyriectl logs`` without a name: every instance's log merged, each line prefixed with its instance, in
time order where lines carry timestamps; ``--since``, ``--lines``, ``--json``, ``-f``; with eyried down too,
and a hostile log (escape sequences, a huge line, a FIFO or symlink in its place) never hangs or garbles."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._cli import eyriectl, following, ok
from tests._daemon import DaemonProcess, embedded, fleet_yaml, running_daemon


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DaemonProcess]:
    with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("bravo-two"))) as daemon:
        daemon.wait_running("alpha", "bravo-two")
        yield daemon


def log_file(d: DaemonProcess, name: str) -> Path:
    inst = d.instance(name)
    return d.home / "instances" / str(inst["id"]) / "logs" / f"{inst['framework']}.log"


class TestMerged:
    def test_every_instance_with_its_name_in_time_order(self, fleet: DaemonProcess) -> None:
        """Both instances' lines show, each prefixed with its padded name; eyried's timestamped lines are in
        time order across the two files."""
        d = fleet
        out = ok(eyriectl(d.home, "logs")).stdout.splitlines()
        assert any(line.startswith("alpha     | ") and "EMBEDDED_READY" in line for line in out), out
        assert any(line.startswith("bravo-two | ") and "EMBEDDED_READY" in line for line in out), out
        stamps = [line.split(" | ", 1)[1].split(" ")[0] for line in out if " eyried: " in line]
        assert len(stamps) == 2 and stamps == sorted(stamps)

    def test_json_lines_lines_and_since(self, fleet: DaemonProcess) -> None:
        """--json prints one object per line; -n bounds the count; a future --since keeps no dated line."""
        d = fleet
        rows = [json.loads(line) for line in ok(eyriectl(d.home, "logs", "--json")).stdout.splitlines()]
        assert {r["instance"] for r in rows} == {"alpha", "bravo-two"}
        dated = [r for r in rows if " eyried: " in r["line"]]
        assert dated and all(r["time"] for r in dated)
        assert len(ok(eyriectl(d.home, "logs", "-n", "1")).stdout.splitlines()) == 1
        later = ok(eyriectl(d.home, "logs", "--since", "2099-01-01T00:00:00Z")).stdout
        assert " eyried: " not in later
        assert eyriectl(d.home, "logs", "--since", "yesterday-ish").returncode == 2

    def test_follow_prints_new_lines_of_every_instance(self, fleet: DaemonProcess) -> None:
        """-f prints what any instance's log gets afterwards, prefixed, as JSON lines when asked."""
        d = fleet
        with following(d.home, "logs", "-f", "-n", "1", "--json") as logs:
            history = len(logs.read_until("\n"))  # the last line printed: every file is followed from here
            ok(eyriectl(d.home, "restart", "bravo-two"))
            out = logs.read_until("eyried: started pid", start=history)[history:]
            rows = [json.loads(line) for line in out.splitlines()]
            assert {r["instance"] for r in rows} == {"bravo-two"}
            assert logs.interrupt() == 0


class TestHostile:
    def test_daemon_down_escapes_a_fifo_a_symlink_and_a_huge_line(self, fleet: DaemonProcess) -> None:
        """With eyried stopped: escape sequences come out escaped, a 20 MiB line is cut (history reads a
        bounded tail), and a FIFO or symlink in place of a log is skipped without waiting on it."""
        d = fleet
        alpha, bravo = log_file(d, "alpha"), log_file(d, "bravo-two")
        assert d.terminate() == 0
        with alpha.open("ab") as f:
            f.write(b"x" * (20 << 20) + b"\n\x1b[2J\x1b]0;owned\x07 evil\n")
        bravo.unlink()
        os.mkfifo(bravo)
        out = ok(eyriectl(d.home, "logs", timeout=30)).stdout
        assert "\x1b" not in out and "\\x1b[2J" in out
        assert "bytes cut)" in out
        bravo.unlink()
        bravo.symlink_to(alpha)
        out = ok(eyriectl(d.home, "logs", "-n", "5", timeout=30)).stdout
        assert all(line.startswith("alpha     | ") for line in out.splitlines()), out
