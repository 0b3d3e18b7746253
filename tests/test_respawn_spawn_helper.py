"""Confined children are this process's own children, started from a thread that confined itself or, when
they need a limit on open files of their own, forked by the spawn helper: their exit codes are ours to
collect, a helper that dies loses none of them, and a failed spawn says why as an unconfined one does."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from supervisor.engine.process import SpawnedProcess, spawn
from supervisor.errors import StartFailed
from supervisor.sandbox.child import Confiner
from supervisor.sandbox.spawner import SpawnHelper
from supervisor.testing import process_gone, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def helper() -> Iterator[SpawnHelper]:
    spawner = SpawnHelper()
    yield spawner
    spawner.close()


def confiner(helper: SpawnHelper) -> Confiner:
    return Confiner(-1, drop_capabilities=os.geteuid() == 0, helper=helper)


def status_fields(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def through_helper(helper: SpawnHelper, argv: list[str], cwd: Path) -> SpawnedProcess:
    """A child forked by the helper itself (`spawn` asks it only for a limit on open files of its own)."""
    program = shutil.which(argv[0])
    assert program is not None
    log_fd = os.open(cwd / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        pid = helper.spawn(
            argv, program, env=dict(os.environ), cwd=cwd, log_fd=log_fd, ruleset=-1, drop_capabilities=False
        )
    finally:
        os.close(log_fd)
    return SpawnedProcess(pid, 0.0, 0, argv)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def zombies() -> set[int]:
    return {p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE}


class TestChildOfOurs:
    async def test_exit_code_is_collected_and_the_child_starts_clean(
        self, helper: SpawnHelper, tmp_path: Path
    ) -> None:
        """The child is ours (not the helper's): its end comes back through its pidfd; it starts in its
        own session with no signal blocked or ignored, and no_new_privs set."""
        proc = spawn(
            ["sleep", "30"],
            env=dict(os.environ),
            cwd=tmp_path,
            log_path=tmp_path / "log",
            confine=confiner(helper),
        )
        assert parent_of(proc.pid) == os.getpid() != helper.pid
        fields = status_fields(proc.pid)
        assert (fields["SigBlk"], fields["SigIgn"], fields["NoNewPrivs"]) == ("0" * 16, "0" * 16, "1")
        assert os.getsid(proc.pid) == proc.pid == proc.pgid
        proc.send_signal(signal.SIGTERM)
        assert (await proc.wait()).signal == signal.SIGTERM

    async def test_a_clean_exit_code_comes_back(self, helper: SpawnHelper, tmp_path: Path) -> None:
        proc = spawn(
            ["sh", "-c", "exit 3"],
            env=dict(os.environ),
            cwd=tmp_path,
            log_path=tmp_path / "log",
            confine=confiner(helper),
        )
        assert (await proc.wait()).code == 3


class TestHelperGone:
    async def test_children_outlive_the_helper_and_the_next_spawn_starts_a_new_one(
        self, helper: SpawnHelper, tmp_path: Path
    ) -> None:
        """Killing the helper ends none of its children (they are ours); the next spawn replaces it."""
        first = through_helper(helper, ["sleep", "60"], tmp_path)
        old = helper.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await wait_for(lambda: process_gone(old))
        second = through_helper(helper, ["sleep", "60"], tmp_path)
        assert helper.pid not in (None, old)
        for proc in (first, second):
            assert parent_of(proc.pid) == os.getpid()
            proc.send_signal(signal.SIGKILL)
            assert (await proc.wait()).signal == signal.SIGKILL

    async def test_close_ends_the_helper(self, helper: SpawnHelper, tmp_path: Path) -> None:
        proc = through_helper(helper, ["true"], tmp_path)
        pid = helper.pid
        assert pid is not None
        helper.close()
        assert helper.pid is None and process_gone(pid)
        assert (await proc.wait()).code == 0


class TestFailures:
    @pytest.mark.parametrize("confined", [False, True])
    def test_a_program_that_cannot_run_says_why(
        self, helper: SpawnHelper, tmp_path: Path, confined: bool
    ) -> None:
        """The same errors as an unconfined spawn: a missing program, one not on PATH, one not executable."""
        plain = tmp_path / "plain-file"
        plain.write_text("not a program\n")
        confine = confiner(helper) if confined else None
        expected = [
            ([str(tmp_path / "missing")], f"{tmp_path / 'missing'}: no such file"),
            (["no-such-program-here"], "no-such-program-here: command not found on PATH"),
            ([str(plain)], f"{plain}: cannot execute: Permission denied"),
        ]
        for argv, error in expected:
            with pytest.raises(StartFailed) as info:
                spawn(argv, env=dict(os.environ), cwd=tmp_path, log_path=tmp_path / "log", confine=confine)
            assert str(info.value) == error

    def test_a_failed_exec_leaves_no_zombie(self, helper: SpawnHelper, tmp_path: Path) -> None:
        """The child that could not exec is collected before the spawn reports the error."""
        plain = tmp_path / "plain-file"
        plain.write_text("not a program\n")
        before = zombies()
        with pytest.raises(StartFailed):
            spawn(
                [str(plain)],
                env=dict(os.environ),
                cwd=tmp_path,
                log_path=tmp_path / "log",
                confine=confiner(helper),
            )
        assert zombies() <= before
