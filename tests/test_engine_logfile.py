"""Log rotation that loses nothing while a child floods its log, and the rotation rules themselves."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import structlog

from supervisor.engine import procfs, spawn
from supervisor.engine.logfile import backup_path, needs_rotation, rotate
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.policies import LogPolicy
from supervisor.store import Store
from supervisor.testing import faulty, make_runtime, running_engine, wait_for

pytestmark = pytest.mark.anyio

_LINE = re.compile(rb"^line (\d{8}) x*$")


def numbers_in(paths: list[Path]) -> list[int]:
    """The line numbers in ``paths`` read in order, failing on any line that is not a whole flood line (or
    the child's or eyried's own line)."""
    out: list[int] = []
    for path in paths:
        for raw in path.read_bytes().splitlines():
            if raw.startswith(b"faulty ") or b" eyried: " in raw or raw == b"":
                continue
            m = _LINE.match(raw)
            assert m is not None, f"torn or foreign line in {path.name}: {raw[:60]!r}"
            out.append(int(m.group(1)))
    return out


class TestRotationUnderLoad:
    async def test_flooding_child_loses_and_repeats_no_line(self, home: Home, tmp_path: Path) -> None:
        """A child writing 400k numbered lines while its log rotates again and again: every line exactly once,
        in order, across the backups and the live file."""
        store = Store(home)
        done = tmp_path / "flood.done"
        lines = 400_000
        rt = make_runtime(
            store,
            "flood",
            faulty("--flood", str(lines), "--flood-width", "64", "--done-file", str(done)),
            logs=LogPolicy(max_bytes=512 * 1024, backups=200),
        )
        with structlog.testing.capture_logs() as logs:
            async with running_engine(store, log_check_interval=0.01) as engine:
                await engine.add(rt)
                await wait_for(lambda: done.exists(), timeout=30)
                await wait_for(lambda: not needs_rotation(rt.log_path, rt.logs), timeout=10)
                assert engine.get(rt.instance_id).status is InstanceStatus.RUNNING
        rotations = [e for e in logs if e["event"] == "log_rotated"]
        assert len(rotations) >= 5
        backups = sorted(
            (p for p in rt.log_path.parent.iterdir() if re.fullmatch(r".*\.log\.\d+", p.name)),
            key=lambda p: -int(p.name.rsplit(".", 1)[1]),
        )
        assert len(backups) == len(rotations)
        assert numbers_in([*backups, rt.log_path]) == list(range(1, lines + 1))
        assert all(e["paused_processes"] == 1 for e in rotations)


class TestRotate:
    def test_below_the_limit_nothing_happens(self, tmp_path: Path) -> None:
        """A log smaller than max_bytes is left alone."""
        log = tmp_path / "a.log"
        log.write_bytes(b"x" * 100)
        assert rotate(log, LogPolicy(max_bytes=1024, backups=2), dict) is None
        assert log.read_bytes() == b"x" * 100 and not backup_path(log, 1).exists()

    def test_backups_shift_and_the_oldest_is_dropped(self, tmp_path: Path) -> None:
        """Each rotation moves .1 → .2 …; beyond `backups` the oldest content disappears."""
        log = tmp_path / "a.log"
        policy = LogPolicy(max_bytes=1024, backups=2)
        for generation in (b"1", b"2", b"3"):
            log.write_bytes(generation * 2000)
            result = rotate(log, policy, dict)
            assert result is not None and result.size == 2000 and result.backup == backup_path(log, 1)
            assert log.read_bytes() == b""
        assert backup_path(log, 1).read_bytes() == b"3" * 2000
        assert backup_path(log, 2).read_bytes() == b"2" * 2000
        assert not backup_path(log, 3).exists()

    def test_no_backups_means_truncate(self, tmp_path: Path) -> None:
        """With backups 0 the log is emptied and nothing is kept."""
        log = tmp_path / "a.log"
        log.write_bytes(b"y" * 4096)
        result = rotate(log, LogPolicy(max_bytes=1024, backups=0), dict)
        assert result is not None and result.backup is None and log.read_bytes() == b""

    async def test_writer_is_paused_and_resumed(self, tmp_path: Path) -> None:
        """The writing process is stopped for the final copy and running again afterwards."""
        log = tmp_path / "w.log"
        env = {**os.environ, procfs.MARKER_VAR: "writer"}
        log.write_bytes(b"earlier output\n" * 100)
        proc = spawn(faulty("--heartbeat", "0.01"), env=env, cwd=tmp_path, log_path=log)
        try:
            await wait_for(lambda: b"heartbeat" in log.read_bytes())
            result = rotate(log, LogPolicy(max_bytes=1024, backups=1), lambda: {proc.pid: proc.start_ticks})
            assert result is not None and result.frozen == 1
            info = procfs.read_stat(proc.pid)
            assert info is not None and info.state != "T"
            size = log.stat().st_size
            await wait_for(lambda: log.stat().st_size > size)
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
