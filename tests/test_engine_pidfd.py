"""The process-identity toolkit on real processes: verified pidfds, ended, signals, exit statuses, and the
``/proc`` reads behind them (thread states, exited)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from supervisor.engine import pidfd, procfs
from supervisor.engine.pidfd import ExitStatus

_WAIT = 5.0
_THREADED = (
    "import os, threading, time\n"
    "for _ in range(2): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    "os.write(1, b'ready\\n')\n"
    "time.sleep(60)\n"
)


def _start(code: str, *, ready: bool = False) -> int:
    """A Python child running ``code``, not wrapped in `subprocess.Popen` (which would reap it itself); with
    ``ready``, returned once it printed its ready line."""
    argv = [sys.executable, "-c", code]
    if not ready:
        return os.posix_spawn(sys.executable, argv, dict(os.environ))
    read, write = os.pipe()
    try:
        actions = [(os.POSIX_SPAWN_DUP2, write, 1), (os.POSIX_SPAWN_CLOSE, read)]
        pid = os.posix_spawn(sys.executable, argv, dict(os.environ), file_actions=actions)
    finally:
        os.close(write)
    try:
        readable, _, _ = select.select([read], [], [], _WAIT)
        assert readable and os.read(read, 64) == b"ready\n"
    finally:
        os.close(read)
    return pid


@contextlib.contextmanager
def _child(code: str, *, ready: bool = False) -> Iterator[int]:
    """A child of ours, killed and reaped afterwards through a pidfd (never by a pid that may be reused)."""
    pid = _start(code, ready=ready)
    fd = os.pidfd_open(pid)
    try:
        yield pid
    finally:
        pidfd.send_signal(fd, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PIDFD, fd, os.WEXITED)
        os.close(fd)


def _until_ended(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], _WAIT)
    assert readable, "the process did not end"


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A running child of ours."""
    with _child("import time; time.sleep(60)") as pid:
        yield pid


def _ticks(pid: int) -> int:
    info = procfs.read_stat(pid)
    assert info is not None
    return info.start_ticks


class TestOpenVerified:
    def test_the_recorded_process_is_opened(self, sleeper: int) -> None:
        """A pid that still has the recorded start time gives a pidfd and the row read through it."""
        opened = pidfd.open_verified(sleeper, _ticks(sleeper))
        assert opened is not None
        fd, info = opened
        try:
            assert info.pid == sleeper and not info.gone and not pidfd.ended(fd)
        finally:
            os.close(fd)

    def test_a_recycled_pid_is_refused(self, sleeper: int) -> None:
        """A pid whose start time differs from the recorded one is another process: no pidfd."""
        ticks = _ticks(sleeper)
        assert pidfd.open_verified(sleeper, ticks + 1) is None
        assert pidfd.open_verified(sleeper, ticks - 1) is None

    def test_a_gone_pid_is_refused(self) -> None:
        """A process that ended and was reaped cannot be opened, whatever start time is given."""
        pid = _start("pass")
        ticks = _ticks(pid)
        os.waitpid(pid, 0)
        assert pidfd.open_verified(pid, ticks) is None


class TestEnded:
    def test_ended_turns_true_when_the_process_dies(self, sleeper: int) -> None:
        """A running process has not ended; once killed it has, before anyone reaps it."""
        fd = os.pidfd_open(sleeper)
        try:
            assert not pidfd.ended(fd)
            os.kill(sleeper, signal.SIGKILL)
            _until_ended(fd)
            assert pidfd.ended(fd)
        finally:
            os.close(fd)


class TestSendSignal:
    def test_the_signal_reaches_the_process_and_an_ended_one_is_ignored(self) -> None:
        """A signal sent through the pidfd kills the process; sending to it once reaped raises nothing."""
        pid = _start("import time; time.sleep(60)")
        fd = os.pidfd_open(pid)
        try:
            pidfd.send_signal(fd, signal.SIGTERM)
            _until_ended(fd)
            assert pidfd.collect(os.P_PIDFD, fd) == ExitStatus(signal=signal.SIGTERM)
            pidfd.send_signal(fd, signal.SIGTERM)
        finally:
            os.close(fd)


class TestCollect:
    def test_exit_code_of_an_ended_child(self) -> None:
        """A child that exits 3 is reaped by pid with exit code 3 and no signal."""
        pid = _start("import sys; sys.exit(3)")
        fd = os.pidfd_open(pid)
        try:
            _until_ended(fd)
        finally:
            os.close(fd)
        status = pidfd.collect(os.P_PID, pid)
        assert status == ExitStatus(code=3) and status.describe() == "exit code 3"
        assert procfs.read_stat(pid) is None  # reaped, not left a zombie

    def test_signal_of_a_killed_child_and_none_while_it_runs(self, sleeper: int) -> None:
        """A running child gives None (and is left alone); once killed, the signal that killed it."""
        fd = os.pidfd_open(sleeper)
        try:
            assert pidfd.collect(os.P_PIDFD, fd) is None
            os.kill(sleeper, signal.SIGKILL)
            _until_ended(fd)
            assert pidfd.collect(os.P_PIDFD, fd) == ExitStatus(signal=signal.SIGKILL)
        finally:
            os.close(fd)

    def test_a_process_that_is_not_our_child_raises(self) -> None:
        """Collecting someone else's process is refused with `ChildProcessError`."""
        with pytest.raises(ChildProcessError):
            pidfd.collect(os.P_PID, os.getppid())


class TestThreadStates:
    def test_every_thread_is_listed_and_all_stop_on_sigstop(self) -> None:
        """Each thread has a state; after SIGSTOP every one of them reaches a stopped state."""
        with _child(_THREADED, ready=True) as pid:
            assert len(procfs.thread_states(pid)) == 3
            assert all(state in "RS" for state in procfs.thread_states(pid))
            os.kill(pid, signal.SIGSTOP)
            deadline = time.monotonic() + _WAIT
            while not all(state in "tT" for state in procfs.thread_states(pid)):
                assert time.monotonic() < deadline, procfs.thread_states(pid)
                time.sleep(0.001)

    def test_a_gone_process_has_no_threads(self) -> None:
        """A reaped process has no thread states at all."""
        pid = _start("pass")
        os.waitpid(pid, 0)
        assert procfs.thread_states(pid) == []


class TestExited:
    def test_running_zombie_and_reaped(self, sleeper: int) -> None:
        """A running process has not exited; a zombie waiting for its parent has, and so has a reaped one."""
        assert not procfs.exited(sleeper)
        fd = os.pidfd_open(sleeper)
        try:
            os.kill(sleeper, signal.SIGKILL)
            _until_ended(fd)
        finally:
            os.close(fd)
        assert procfs.exited(sleeper)
        os.waitpid(sleeper, 0)
        assert procfs.exited(sleeper)
