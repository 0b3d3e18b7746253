"""The quick spawn paths keep what a child starts with: ``posix_spawn`` for an unconfined child, a thread that
confines itself for a confined one; a program found on PATH once is looked for again when it moves; a port
claim known to be ours is claimed again once its file changes."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from supervisor.engine import _posix_spawn
from supervisor.engine._launch import check_port
from supervisor.engine.process import spawn
from supervisor.port_claims import PortOwner
from supervisor.sandbox.child import Confiner
from supervisor.sandbox.spawner import SpawnHelper
from supervisor.store import Store
from supervisor.testing import make_runtime, process_gone, wait_for
from tests._services import bare_services

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not _posix_spawn.AVAILABLE, reason="this C library lacks posix_spawn's chdir/closefrom"
    ),
]


def status_fields(path: str) -> dict[str, str]:
    lines = Path(path).read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


@pytest.fixture
def dirty_parent() -> Iterator[int]:
    """This process as an unkind parent: SIGHUP ignored, SIGTERM blocked in this thread, an inheritable fd."""
    leaked = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield leaked
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGHUP, old_hup)
        os.close(leaked)


def confined_threads() -> int:
    """Threads of this process with no_new_privs set (one that ended meanwhile is not counted)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            count += status_fields(f"/proc/self/task/{task}/status")["NoNewPrivs"] == "1"
        except FileNotFoundError:
            continue
    return count


def confiner() -> Confiner:
    return Confiner(-1, drop_capabilities=os.geteuid() == 0, helper=SpawnHelper())


class TestChildStartsClean:
    @pytest.mark.parametrize("confined", [False, True])
    async def test_session_streams_directory_signals_and_descriptors(
        self, tmp_path: Path, dirty_parent: int, confined: bool
    ) -> None:
        """Its own session, stdin /dev/null, output in the log, its working directory, no signal blocked or
        ignored, no descriptor but 0–2 (an inheritable one of ours included)."""
        workdir = tmp_path / "work"
        workdir.mkdir()
        proc = spawn(
            ["sleep", "30"],
            env=dict(os.environ),
            cwd=workdir,
            log_path=tmp_path / "log",
            confine=confiner() if confined else None,
        )
        try:
            assert os.getsid(proc.pid) == proc.pid == proc.pgid
            assert os.readlink(f"/proc/{proc.pid}/cwd") == str(workdir)
            assert os.readlink(f"/proc/{proc.pid}/fd/0") == os.devnull
            for fd in (1, 2):
                assert os.readlink(f"/proc/{proc.pid}/fd/{fd}") == str(tmp_path / "log")
            assert sorted(os.listdir(f"/proc/{proc.pid}/fd")) == ["0", "1", "2"]
            fields = status_fields(f"/proc/{proc.pid}/status")
            assert (fields["SigBlk"], fields["SigIgn"]) == ("0" * 16, "0" * 16)
            assert fields["NoNewPrivs"] == ("1" if confined else "0")
        finally:
            proc.send_signal(signal.SIGKILL)
            assert (await proc.wait()).signal == signal.SIGKILL

    async def test_confinement_stays_with_the_thread_that_spawned(self, tmp_path: Path) -> None:
        """The confined child has no_new_privs; the caller's thread does not, and no thread of this process
        keeps it."""
        before = status_fields("/proc/thread-self/status")
        proc = spawn(
            ["sleep", "30"], env=dict(os.environ), cwd=tmp_path, log_path=tmp_path / "log", confine=confiner()
        )
        try:
            assert status_fields(f"/proc/{proc.pid}/status")["NoNewPrivs"] == "1"
            after = status_fields("/proc/thread-self/status")
            assert (after["NoNewPrivs"], after["CapBnd"], after["CapEff"]) == (
                before["NoNewPrivs"],
                before["CapBnd"],
                before["CapEff"],
            )
            await wait_for(lambda: confined_threads() == 0)  # the spawning thread ends just after its join
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


class TestWithoutPosixSpawn:
    async def test_popen_starts_the_child_the_same_way(
        self, tmp_path: Path, dirty_parent: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Where the C library lacks what posix_spawn needs, Popen starts it: own session, /dev/null, the
        log, no descriptor but 0–2, no signal blocked, and its end collected."""
        monkeypatch.setattr(_posix_spawn, "AVAILABLE", False)
        proc = spawn(["sleep", "30"], env=dict(os.environ), cwd=tmp_path, log_path=tmp_path / "log")
        try:
            assert os.getsid(proc.pid) == proc.pid
            assert os.readlink(f"/proc/{proc.pid}/fd/0") == os.devnull
            assert sorted(os.listdir(f"/proc/{proc.pid}/fd")) == ["0", "1", "2"]
            assert status_fields(f"/proc/{proc.pid}/status")["SigBlk"] == "0" * 16
        finally:
            proc.send_signal(signal.SIGKILL)
            assert (await proc.wait()).signal == signal.SIGKILL


class TestProgramMoved:
    async def test_a_program_found_once_is_looked_for_again_when_it_moves(self, tmp_path: Path) -> None:
        """The PATH lookup is kept between spawns; a program that left that place is found where it went."""
        first, second = tmp_path / "a", tmp_path / "b"
        first.mkdir()
        second.mkdir()
        program = first / "eyrie-moving-program"
        program.write_text("#!/bin/sh\nexit 7\n")
        program.chmod(stat.S_IRWXU)
        env = {**os.environ, "PATH": f"{first}:{second}:{os.environ.get('PATH', os.defpath)}"}
        proc = spawn([program.name], env=env, cwd=tmp_path, log_path=tmp_path / "log")
        assert (await proc.wait()).code == 7
        program.rename(second / program.name)
        proc = spawn([program.name], env=env, cwd=tmp_path, log_path=tmp_path / "log")
        assert (await proc.wait()).code == 7
        await wait_for(lambda: process_gone(proc.pid))


class TestClaimKnownToBeOurs:
    async def test_a_claim_taken_over_on_disk_is_seen_at_the_next_check(self, tmp_path: Path) -> None:
        """A claim seen to be ours is not read again while its file is unchanged; a new file is read."""
        store = Store(tmp_path / "instances")
        services = bare_services(store, tmp_path / "claims", threads=1)
        rt = make_runtime(store, "claimer", ["true"])
        log = structlog.get_logger("test")

        async def no_sweep() -> None:
            pass

        assert await check_port(rt, services, no_sweep, log) is None
        assert await check_port(rt, services, no_sweep, log) is None
        stranger = PortOwner(
            str(tmp_path / "elsewhere"), "someone-else", str(tmp_path / "theirs"), os.getuid()
        )
        (tmp_path / "claims" / str(rt.port)).unlink()
        assert services.claims.claim(rt.port, stranger) is None
        held = await check_port(rt, services, no_sweep, log)
        assert held is not None and "someone-else" in held
