"""The process-handle contract and its two implementations: a child we spawned, and one we adopted.

Both are watched through a **pidfd** (``os.pidfd_open`` + ``anyio.wait_readable``): no thread per child, no
SIGCHLD handler, no pid-reuse race. A spawned child is reaped by us (exit code known); an adopted process —
found alive after a daemon restart — is usually not our child, so its exit code is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import anyio

from supervisor.engine import _posix_spawn, pidfd, procfs
from supervisor.engine._confined_spawn import spawn_confined
from supervisor.engine._sparse import SparseLock
from supervisor.engine.child_setup import empty_signal_mask
from supervisor.engine.open_files import child_command, child_open_files, place_high, spawning
from supervisor.engine.pidfd import ExitStatus
from supervisor.errors import StartFailed
from supervisor.sandbox.child import Confiner
from supervisor.sandbox.spawner import ConfinementFailed

__all__ = [
    "AdoptedProcess",
    "CmdlineCheck",
    "ExitStatus",
    "ProcessHandle",
    "SpawnedProcess",
    "current_boot_id",
    "reap_recorded",
    "spawn",
    "spawn_keeping_log",
]

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

_START_TIME_SLACK = 1.0
"""psutil derives start times from the boot time, which it reads in whole seconds; pid, marker and command
line must match as well, so a second of slack cannot confuse two processes."""
# a symlink or FIFO planted at the log path is refused, never followed or waited on
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

_RELEASED: list[subprocess.Popen[bytes]] = []
"""Children deliberately left running (the engine detached): kept referenced so that their `Popen` objects
neither warn nor reap them behind the back of the supervisor that adopts them next."""


def current_boot_id() -> str:
    """This boot's id, from the file named by ``EYRIE_BOOT_ID_FILE`` (default the kernel's)."""
    path = os.environ.get("EYRIE_BOOT_ID_FILE") or BOOT_ID_FILE
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise StartFailed(f"cannot read the boot id from {path}: {exc.strerror}") from None


class ProcessHandle(Protocol):
    """What the engine needs from a running process, however it came to be watched."""

    @property
    def pid(self) -> int: ...

    @property
    def pgid(self) -> int: ...

    @property
    def start_time(self) -> float:
        """Creation time (seconds since the epoch, as psutil reports it)."""
        ...

    @property
    def start_ticks(self) -> int:
        """Creation time in clock ticks since boot; with the pid, the process's identity."""
        ...

    @property
    def cmdline(self) -> tuple[str, ...]: ...

    @property
    def exit_status(self) -> ExitStatus | None:
        """Set once `wait` has seen the process end."""
        ...

    async def wait(self) -> ExitStatus:
        """Until the process ends; safe to call again (returns the same status) and to cancel."""
        ...

    def on_end(self, callback: Callable[[], object]) -> Callable[[], None] | None:
        """Have the event loop call ``callback`` once when the process ends, until the returned function is
        called (by the same task); None when it has ended already or another task waits for it."""
        ...

    def alive(self) -> bool: ...

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal this very process (never a recycled pid); a process that is gone is ignored."""
        ...

    def release(self) -> None:
        """Stop watching and leave the process running (for the next supervisor to adopt)."""
        ...


class _PidfdProcess:
    """Shared machinery: a pidfd that becomes readable when the process ends.

    One caller at a time waits on the descriptor: `on_end`'s callback (the running instance's watch) or a
    `wait`. Neither keeps an `anyio.Lock` while idle (its queue of waiters is ~0.8 KB, and every running
    instance has its process watched): waits take a `SparseLock`, and a wait that finds `on_end` there
    makes an event to be woken by.
    """

    def __init__(
        self,
        pid: int,
        pgid: int,
        start_time: float,
        start_ticks: int,
        cmdline: Sequence[str],
        pidfd: int | None = None,
    ) -> None:
        self._pid = pid
        self._pgid = pgid
        self._start_time = start_time
        self._start_ticks = start_ticks
        self._cmdline = tuple(cmdline)
        self._status: ExitStatus | None = None
        self._fd: int | None = place_high(os.pidfd_open(pid) if pidfd is None else pidfd)
        self._lock = SparseLock()  # held by a `wait`
        self._watched = False  # `on_end` holds the descriptor
        self._unwatched: anyio.Event | None = None  # set when `on_end`'s caller stops watching

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def pgid(self) -> int:
        return self._pgid

    @property
    def start_time(self) -> float:
        return self._start_time

    @property
    def start_ticks(self) -> int:
        return self._start_ticks

    @property
    def cmdline(self) -> tuple[str, ...]:
        return self._cmdline

    @property
    def exit_status(self) -> ExitStatus | None:
        return self._status

    def alive(self) -> bool:
        if self._status is not None or self._fd is None:
            return False
        return not pidfd.ended(self._fd)

    def send_signal(self, sig: signal.Signals) -> None:
        if self._fd is not None:
            pidfd.send_signal(self._fd, sig)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def wait(self) -> ExitStatus:
        if self._status is None and not self._busy():
            self._collect()  # ended already (`on_end` said so): no wait for the loop's next turn
        while self._status is None and self._watched:
            if self._unwatched is None:
                self._unwatched = anyio.Event()
            await self._unwatched.wait()
        if self._status is not None:
            return self._status
        async with self._lock:
            while self._status is None:
                assert self._fd is not None
                await anyio.wait_readable(self._fd)
                self._collect()
        return self._status

    def _busy(self) -> bool:
        return self._watched or self._lock.locked()

    def on_end(self, callback: Callable[[], object]) -> Callable[[], None] | None:
        # the pidfd's readiness calls ``callback`` straight from the loop: no task waits for it; meanwhile a
        # `wait` in another task waits until it stops, rather than register the same descriptor
        fd = self._fd
        if self._status is not None or fd is None or self._busy():
            return None
        self._watched = True
        watch = _EndWatch(self, fd, callback)
        watch.loop.add_reader(fd, watch.ended)
        return watch.stop

    def _unwatch(self) -> None:
        self._watched = False
        if self._unwatched is not None:
            self._unwatched.set()
            self._unwatched = None

    def _collect(self) -> None:
        """Reap the process if it has ended, closing the pidfd; `_status` says whether it did."""
        if self._fd is None:
            return
        self._status = self._reap()
        if self._status is not None:
            os.close(self._fd)
            self._fd = None

    def _reap(self) -> ExitStatus | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self._pid} status={self._status}>"


class _EndWatch:
    """`_PidfdProcess.on_end`'s registration: slots rather than two closures (one per running instance)."""

    __slots__ = ("callback", "fd", "loop", "proc")

    def __init__(self, proc: _PidfdProcess, fd: int, callback: Callable[[], object]) -> None:
        self.proc = proc
        self.fd = fd
        self.callback = callback
        self.loop = asyncio.get_running_loop()

    def ended(self) -> None:
        self.loop.remove_reader(self.fd)  # the descriptor stays readable: once is enough
        self.callback()

    def stop(self) -> None:
        self.loop.remove_reader(self.fd)
        self.proc._unwatch()


class SpawnedProcess(_PidfdProcess):
    """Our own child: started in its own session, output appended to the instance's log file; started by
    ``posix_spawn`` or, confined, by the spawn helper (both reaped through the pidfd), or by
    `subprocess.Popen` (``popen``) where the C library lacks what ``posix_spawn`` needs here."""

    def __init__(
        self,
        pid: int,
        start_time: float,
        start_ticks: int,
        cmdline: Sequence[str],
        popen: subprocess.Popen[bytes] | None = None,
    ):
        super().__init__(pid, pid, start_time, start_ticks, cmdline)
        self._popen = popen

    def release(self) -> None:
        super().release()
        if self._status is None and self._popen is not None:
            _RELEASED.append(self._popen)

    def _reap(self) -> ExitStatus | None:
        if self._popen is None:
            assert self._fd is not None
            try:
                return pidfd.collect(os.P_PIDFD, self._fd)
            except ChildProcessError:
                return ExitStatus()  # reaped through another handle: how it ended is not known here
        code = self._popen.poll()
        if code is None:
            return None
        return ExitStatus(signal=-code) if code < 0 else ExitStatus(code=code)


class AdoptedProcess(_PidfdProcess):
    """A process found alive after a daemon restart; usually not our child, so its exit code is unknown."""

    def _reap(self) -> ExitStatus | None:
        assert self._fd is not None
        try:
            return pidfd.collect(os.P_PIDFD, self._fd)
        except ChildProcessError:
            return ExitStatus()  # someone else's child: it ended, how is not ours to know

    @classmethod
    def adopt(
        cls,
        pid: int,
        *,
        start_time: float,
        cmdline: Sequence[str],
        marker: str,
        legacy_marker: str | None = None,
        same_cmdline: CmdlineCheck | None = None,
    ) -> AdoptedProcess | None:
        """Watch ``pid`` if it is still the process we recorded: same start time and this instance's marker
        (``legacy_marker`` is also accepted: what a release before home markers gave it).

        The command line counts only when the marker cannot be read: programs rewrite their process title
        (OpenClaw's gateway reads ``openclaw-gateway``), but the environment they were started with stays.
        So it is read only then; a process proven by its marker keeps the recorded one. The pidfd is opened
        before the one stat read that proves the start time, so what it names is what was checked. None when
        it is gone, a zombie, or a different process that reuses the pid.
        """
        opened = pidfd.open_described(pid)
        if opened is None:
            return None
        fd, info = opened
        if info.gone or not _started_at(info.start_ticks, start_time):
            os.close(fd)
            return None
        found = procfs.read_marker(pid)
        if found is not None:
            ours, current = found in (marker, legacy_marker), list(cmdline)
        else:
            current = procfs.read_cmdline(pid)
            ours = (same_cmdline or _equal)(current, cmdline)
        if not ours:
            os.close(fd)
            return None
        return cls(pid, info.pgid, start_time, info.start_ticks, current, fd)


def reap_recorded(pid: int, start_time: float) -> ExitStatus | None:
    """Collect a recorded process that ended as a zombie child of ours (it died while this supervisor was
    re-executing itself), so it does not linger, and say how it ended. None if it is not such a zombie."""
    info = procfs.read_stat(pid)
    if info is None or info.state != "Z" or not _started_at(info.start_ticks, start_time):
        return None
    try:
        return pidfd.collect(os.P_PID, pid)
    except ChildProcessError:
        return None


class CmdlineCheck(Protocol):
    def __call__(self, current: Sequence[str], recorded: Sequence[str]) -> bool: ...


def _equal(current: Sequence[str], recorded: Sequence[str]) -> bool:
    return list(current) == list(recorded)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    confine: Confiner | None = None,
) -> SpawnedProcess:
    """Start ``argv`` in its own session in ``cwd``, stdin from /dev/null, output appended to ``log_path``.

    ``env`` is the child's complete environment; a child to be confined (``confine``) is started from a
    thread that confined itself (`supervisor.engine._confined_spawn`), or forked by the spawn helper when it
    needs a limit on open files other than the daemon's. A missing program, working directory or log file,
    or an exec failure, raises `StartFailed` with the text that belongs in ``last_error``. What can be
    checked after a failure (the program, the working directory) is checked only then: a respawn pays for
    none of it.
    """
    proc, log_fd = spawn_keeping_log(argv, env=env, cwd=cwd, log_path=log_path, confine=confine)
    os.close(log_fd)
    return proc


def spawn_keeping_log(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    confine: Confiner | None = None,
) -> tuple[SpawnedProcess, int]:
    """`spawn`, returning too the descriptor the log was opened with (appending, ``O_CLOEXEC``), which the
    caller now owns: the supervisor's own lines go through it rather than a second open of the file."""
    program = argv[0]
    search = env.get("PATH", os.defpath)
    executable = program if "/" in program else _resolve(program, search)
    log_fd = _open_log(log_path)
    try:
        return _spawn_found(argv, executable, search, env, cwd, log_fd, confine), log_fd
    except BaseException:
        os.close(log_fd)
        raise


def _spawn_found(
    argv: Sequence[str],
    executable: str,
    search: str,
    env: Mapping[str, str],
    cwd: Path,
    log_fd: int,
    confine: Confiner | None,
) -> SpawnedProcess:
    """Spawn ``executable``; when it was found on PATH (``search``) and has gone since, look again."""
    program = argv[0]
    try:
        try:
            return _spawn_once(argv, executable, env, cwd, log_fd, confine)
        except OSError as exc:
            _diagnose(program, cwd, exc)
            if "/" in program or _resolved.pop((program, search), None) is None:
                raise
        # what was found on PATH before has moved or gone since: look again
        return _spawn_once(argv, _resolve(program, search), env, cwd, log_fd, confine)
    except ConfinementFailed:
        raise StartFailed(f"{program}: the child could not confine itself before exec") from None
    except OSError as exc:
        raise StartFailed(f"{program}: cannot execute: {exc.strerror or exc}") from None


_NOT_FOUND = (errno.ENOENT, errno.ENOTDIR, errno.EACCES)
_resolved: dict[tuple[str, str], str] = {}
"""Programs found on PATH, by (name, PATH): looked up at their first start, and again when an exec of what
was found fails as if it had gone."""


def _resolve(program: str, search: str) -> str:
    """Where ``program`` is on ``search`` (found here, so the child, during which a vfork parent waits, does
    not search PATH); `StartFailed` when it is nowhere."""
    found = _resolved.get((program, search))
    if found is None:
        found = shutil.which(program, path=search)
        if found is None:
            raise StartFailed(f"{program}: command not found on PATH")
        _resolved[(program, search)] = found
    return found


def _diagnose(program: str, cwd: Path, failure: OSError) -> None:
    """After an exec failed as if something was missing: `StartFailed` naming what is."""
    if failure.errno not in _NOT_FOUND:
        return
    if "/" in program and not os.path.exists(program):
        raise StartFailed(f"{program}: no such file")
    if not cwd.is_dir():
        raise StartFailed(f"{program}: working directory {cwd} does not exist")


def _open_log(log_path: Path) -> int:
    """The log file opened for appending (its directory made if missing); a blocking fd the child inherits
    as its stdout and stderr."""
    try:
        try:
            log_fd = os.open(log_path, _LOG_FLAGS, 0o600)
        except FileNotFoundError:
            log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            log_fd = os.open(log_path, _LOG_FLAGS, 0o600)
    except OSError as exc:
        raise StartFailed(f"cannot open log file {log_path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(log_fd).st_mode):
        os.close(log_fd)
        raise StartFailed(f"log file {log_path} is not a regular file; move it away")
    os.set_blocking(log_fd, True)
    return log_fd


def _spawn_once(
    argv: Sequence[str],
    executable: str,
    env: Mapping[str, str],
    cwd: Path,
    log_fd: int,
    confine: Confiner | None,
) -> SpawnedProcess:
    popen = None
    with spawning():  # how the child gets its limit on open files is decided with the fork
        if confine is not None:
            open_files = child_open_files()
            if open_files is None and _posix_spawn.AVAILABLE:
                pid = spawn_confined(confine, executable, argv, env, cwd=cwd, log_fd=log_fd)
            else:
                pid = confine.spawn(argv, executable, env=env, cwd=cwd, log_fd=log_fd, open_files=open_files)
        elif _posix_spawn.AVAILABLE:
            command, through = child_command(argv, executable)
            pid = _posix_spawn.posix_spawn(through, command, env, cwd=str(cwd), log_fd=log_fd)
        else:
            command, through = child_command(argv, executable)
            with empty_signal_mask():
                popen = subprocess.Popen(
                    command,
                    executable=through,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=log_fd,
                    cwd=cwd,
                    env=dict(env),
                    close_fds=True,
                    start_new_session=True,
                )
            pid = popen.pid
    return _handle_for(pid, argv, popen)


def _handle_for(
    pid: int, argv: Sequence[str], popen: subprocess.Popen[bytes] | None = None
) -> SpawnedProcess:
    """Identify the fresh child: start time (as psutil computes it: boot time + start ticks) and cmdline.

    The command line is ``argv``: what the child was just exec'ed with. Reading it back from /proc would
    wait for the child's dynamic loader to release its memory map (a millisecond or more).
    """
    info = procfs.read_stat(pid)
    ticks = info.start_ticks if info is not None else 0
    try:
        return SpawnedProcess(pid, _start_time(ticks), ticks, argv, popen)
    except OSError as exc:
        ended = "it was ended" if _end_unwatched(pid, popen) else f"pid {pid} could not be ended"
        raise StartFailed(
            f"{argv[0]}: cannot watch the new process (pidfd_open: {exc.strerror or exc}); {ended}"
        ) from None


def _end_unwatched(pid: int, popen: subprocess.Popen[bytes] | None) -> bool:
    """End and reap a child just spawned that no pidfd watches (whether it could be): left running, it
    would be taken for ended and started again beside itself. Unreaped, it still leads its own group (its
    own session), which no other process can take over: the group is killed by id, then the child reaped."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # a set-user-id program: waiting would never end
        return False
    if popen is not None:
        popen.wait()
    else:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return True


@functools.cache
def _boot_time() -> float:
    """The boot time as psutil reads it (``btime`` in /proc/stat), once: it is the base of every process
    start time, recorded ones included."""
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise RuntimeError("no btime line in /proc/stat")


def _start_time(start_ticks: int) -> float:
    """A process's creation time in seconds since the epoch, computed as psutil's ``create_time`` is."""
    return _boot_time() + start_ticks / procfs.CLK_TCK


def _started_at(start_ticks: int, start_time: float) -> bool:
    """Whether a process that started at ``start_ticks`` is the one recorded as started at ``start_time``."""
    return abs(_start_time(start_ticks) - start_time) <= _START_TIME_SLACK
