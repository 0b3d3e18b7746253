"""eyried's own lines about an instance land in that instance's log, timestamped and marked, in order
across a crash, a restart and a stop; they survive a rotation, never go through a planted symlink, and stay
one line."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from supervisor.engine import InstanceRuntime
from supervisor.engine._supervisor_lines import SupervisorLines, format_line
from supervisor.engine.logfile import backup_path, rotate
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.policies import LogPolicy
from supervisor.store import Store
from supervisor.testing import fast_restart, faulty, free_port, make_runtime, running_engine
from tests._cli import eyriectl, ok
from tests._daemon import DaemonProcess, embedded, fleet_yaml, running_daemon
from tests.test_port_conflict import squatting

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
STUBBORN = embedded(
    "stubborn",
    'command: ["sh", "-c", "trap \'\' TERM; echo up; exec sleep 3600"]\n'
    'ready: {kind: log, pattern: "^up"}\nlive: {kind: process}\nstop_timeout: 1s\nautostart: false',
)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DaemonProcess]:
    with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), STUBBORN)) as daemon:
        daemon.wait_running("alpha")
        yield daemon


def supervisor_lines(d: DaemonProcess, name: str) -> list[str]:
    """The ``eyried:`` lines of ``name``'s log, timestamps checked and cut off."""
    inst = d.instance(name)
    path = d.home / "instances" / inst["id"] / "logs" / f"{inst['framework']}.log"
    out = []
    for line in path.read_text().splitlines():
        if " eyried: " in line:
            assert re.match(rf"^{STAMP} eyried: ", line), line
            out.append(line.split(" eyried: ", 1)[1])
    return out


class TestThroughTheDaemon:
    def test_crash_restart_and_stop_are_told_in_order(self, fleet: DaemonProcess) -> None:
        """kill -9 of the agent, its automatic restart, then a stop: each step is one line, in order."""
        d = fleet
        first = d.instance("alpha")["pid"]
        port = d.instance("alpha")["port"]
        os.kill(first, signal.SIGKILL)
        second = d.wait_new_pid("alpha", first)["pid"]
        d.wait_running("alpha")
        ok(eyriectl(d.home, "stop", "alpha"))
        told = supervisor_lines(d, "alpha")
        assert told[:4] == [
            f"started pid {first} on port {port}",
            f"pid {first} exited: killed by SIGKILL",
            "restart in 0.1s",
            f"started pid {second} on port {port}",
        ]
        assert len(told) == 5 and re.fullmatch(rf"stopped pid {second} \(exit code 0\) in \d+\.\ds", told[4])

    def test_kill_after_stop_timeout_is_told(self, fleet: DaemonProcess) -> None:
        """An agent that ignores SIGTERM: the line says SIGKILL ended it after stop_timeout."""
        d = fleet
        ok(eyriectl(d.home, "start", "stubborn"))
        ok(eyriectl(d.home, "stop", "stubborn"))
        last = supervisor_lines(d, "stubborn")[-1]
        assert last.startswith("SIGTERM did not end it within stop_timeout 1s: killed "), last
        assert "with SIGKILL; stopped pid" in last and "(killed by SIGKILL)" in last


class TestPortMoved:
    @pytest.mark.anyio
    async def test_a_move_to_another_port_is_told(self, home: Home) -> None:
        """A port held by another process: the log says which port it left, who holds it, and where it went,
        before the line about the start on the new port."""
        store = Store(home)
        new_port = free_port()

        async def relocate(rt: InstanceRuntime, holder: str) -> InstanceRuntime:
            return dataclasses.replace(rt, port=new_port)

        with squatting() as held:
            rt = make_runtime(
                store, "mover", faulty("--tcp"), port=held, restart=fast_restart(policy="never")
            )
            async with running_engine(store, relocate=relocate) as engine:
                await engine.add(rt)
                inst = await engine.start(rt.instance_id, wait=True)
                assert inst.status is InstanceStatus.RUNNING
        told = [
            line.split(" eyried: ", 1)[1]
            for line in rt.log_path.read_text().splitlines()
            if " eyried: " in line
        ]
        assert re.fullmatch(
            rf"port {held} is held by pid {os.getpid()} \(.*\): moved to port {new_port}", told[0]
        )
        assert told[1].startswith("started pid ") and told[1].endswith(f" on port {new_port}")


class TestWriting:
    def test_a_line_written_during_a_rotation_lands_after_it(self, tmp_path: Path) -> None:
        """Lines held while a rotation copies and truncates the file are written once it is done: none is
        lost with the truncated bytes, none lands in the backup."""
        log = tmp_path / "agent.log"
        log.write_bytes(b"old output\n" * 200)
        lines = SupervisorLines()
        with lines.held(log):
            lines.write(log, "started pid 1")
            assert rotate(log, LogPolicy(max_bytes=1024, backups=1), dict) is not None
            lines.write(log, "pid 1 exited: exit code 3")
        assert b"eyried" not in backup_path(log, 1).read_bytes()
        told = log.read_text().splitlines()
        assert [line.split(" ", 1)[1] for line in told] == [
            "eyried: started pid 1",
            "eyried: pid 1 exited: exit code 3",
        ]

    def test_a_symlink_at_the_log_path_is_not_followed(self, tmp_path: Path) -> None:
        """A symlink planted where the log goes: nothing is written through it, and nothing raises."""
        target = tmp_path / "elsewhere"
        target.write_bytes(b"")
        log = tmp_path / "agent.log"
        log.symlink_to(target)
        SupervisorLines().write(log, "started pid 1")
        assert target.read_bytes() == b""

    def test_a_fifo_at_the_log_path_does_not_block(self, tmp_path: Path) -> None:
        """A FIFO without a reader in its place is skipped at once (the write never waits)."""
        log = tmp_path / "agent.log"
        os.mkfifo(log)
        SupervisorLines().write(log, "started pid 1")

    def test_control_characters_stay_escaped_on_one_line(self) -> None:
        """An error text with a newline or an escape sequence is one line, shown escaped."""
        line = format_line("start failed: bad\n\x1b[31mred", datetime(2026, 11, 30, 15, 4, 5, 123456, UTC))
        assert line == b"2026-11-30T15:04:05.123Z eyried: start failed: bad\\x0a\\x1b[31mred\n"
