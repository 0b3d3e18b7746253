"""The plain-text ps table and status of `supervisor.cli._plain`: the resource columns, the notes under
the table, what counts as degraded, colour only on request, and the narrow-terminal rule (STATUS alone
shrinks)."""

from __future__ import annotations

import re
from typing import Any

from supervisor.cli._plain import PS_COLUMNS, degraded, memory, ps_lines, ps_notes

RUNNING: dict[str, Any] = {
    "name": "alpha",
    "framework": "embedded",
    "hierarchy_role": "",
    "status": "running",
    "status_detail": "GET /ready: 200",
    "phase": "running",
    "health_status": "healthy",
    "pid": 4242,
    "port": 43001,
    "uptime_seconds": 75,
    "restart_count": 2,
    "cpu_percent": 12.34,
    "memory_bytes": 312 * 2**20,
    "sandbox": "landlock v7",
    "flags": [],
    "desired": "running",
    "last_error": "",
}


def _cells(line: str) -> list[str]:
    return line.split()


class TestColumns:
    def test_cpu_and_mem_columns(self) -> None:
        """CPU shows a percent of one core, MEM a size in powers of 1024; a dash where there is no sample."""
        header, row, unsampled = ps_lines(
            [RUNNING, {**RUNNING, "name": "beta", "cpu_percent": None, "memory_bytes": None}],
            width=250,
            colour=False,
        )
        assert _cells(header) == list(PS_COLUMNS)
        assert "12.3%" in _cells(row) and "312M" in _cells(row)
        assert re.search(r" 2 +- +- +landlock v7", unsampled), unsampled

    def test_memory_sizes(self) -> None:
        """980K, 312M, 1.4G: the units of ps and top."""
        assert [memory(n) for n in (512, 980 * 2**10, 312 * 2**20, int(1.4 * 2**30), None)] == [
            "512B",
            "980K",
            "312M",
            "1.4G",
            "-",
        ]

    def test_colour_only_when_asked(self) -> None:
        """Without colour no escape sequence is written; with it, the status is green."""
        assert not any("\x1b" in line for line in ps_lines([RUNNING], width=250, colour=False))
        assert "\x1b[32mrunning" in ps_lines([RUNNING], width=250, colour=True)[1]

    def test_only_status_shrinks_on_a_narrow_terminal(self) -> None:
        """A table wider than the terminal shortens STATUS with an ellipsis; every other cell stays whole."""
        wide = ps_lines([RUNNING], width=250, colour=False)
        narrow = ps_lines([RUNNING], width=len(wide[1]) - 8, colour=False)
        assert "running (GET /ready: 200)" in wide[1]
        assert "…" in narrow[1] and "landlock v7" in narrow[1] and "43001" in narrow[1]


class TestNotes:
    def test_last_error_for_error_and_backoff(self) -> None:
        """The last error is shown for an instance in error or waiting in backoff, not for one running."""
        rows = [
            {**RUNNING, "last_error": "old news"},
            {**RUNNING, "name": "beta", "status": "starting", "phase": "backoff", "last_error": "exit 1"},
            {**RUNNING, "name": "gamma", "status": "error", "phase": "failed", "last_error": "gave up"},
        ]
        assert ps_notes(rows) == ["beta: exit 1", "gamma: gave up"]


class TestDegraded:
    def test_all_running_and_reload_applied_is_well(self) -> None:
        """Running instances, stopped ones not meant to run and an applied reload: nothing degraded."""
        stopped = {**RUNNING, "name": "idle", "status": "stopped", "desired": "stopped"}
        assert degraded({"last_reload": {"ok": True}}, [RUNNING, stopped]) == []

    def test_each_reason(self) -> None:
        """An error, one meant to run that is not, a declared one not provisioned, a rejected reload."""
        rows = [
            {**RUNNING, "name": "broken", "status": "error", "desired": "stopped", "last_error": "exit 1"},
            {**RUNNING, "name": "slow", "status": "starting"},
            {
                "name": "ghost",
                "status": "",
                "autostart": True,
                "flags": ["MISSING"],
                "last_error": "no persona",
            },
        ]
        reasons = degraded({"last_reload": {"ok": False, "error": "bad file"}}, rows)
        assert reasons == [
            "broken is error: exit 1",
            "slow is starting",
            "ghost is not provisioned: no persona",
            "the last reload was rejected: bad file",
        ]
