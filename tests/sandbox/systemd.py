"""A real ``systemd --user`` manager that a test starts, reboots and tears down without harming the machine.

Why the care: a ``systemd --user`` started as root from the machine's shared cgroup takes that cgroup's parent
as its root and moves every process in it, PID 1 included, into cgroups of its own. So the manager is confined
before it execs: a ``preexec_fn`` writes the child into ``/<unique>/init.scope`` of every tracking hierarchy,
and the manager then treats ``/<unique>`` as its root and manages that subtree only. On exit the sandbox stops
the manager, kills whatever is left in its subtree, removes the cgroup dirs deepest first, restores
``/run/systemd/system``, and fails if any process that was not started inside it changed cgroup.

Usage::

    with user_manager(tmp_path) as manager:
        manager.write_unit("sleeper.service", text)
        manager.systemctl("daemon-reload")
        manager.systemctl("enable", "--now", "sleeper.service")
        manager.reboot(new_boot_id=True)        # exit the manager, start a fresh one on the same dirs
        assert manager.is_active("sleeper.service") == "active"

``manager.env`` holds the variables to give ``systemctl --user`` and ``eyriectl``; the manager passes the same
environment to every unit it starts, including ``EYRIE_BOOT_ID_FILE``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from supervisor.engine.procfs import read_stat

__all__ = [
    "CGROUP_PREFIX",
    "MARKER_DIR",
    "SYSTEMD_BINARY",
    "CgroupSnapshot",
    "UserManager",
    "tracking_hierarchies",
    "unavailable_reason",
    "user_manager",
]

T = TypeVar("T")

SYSTEMD_BINARY = Path("/lib/systemd/systemd")
MARKER_DIR = Path("/run/systemd/system")
"""Tools check this dir to decide whether systemd is running; the sandbox creates it when it is missing."""

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_REGISTRY_LOCK = Path("/run/eyrie-systemd-sandbox.lock")
_REGISTRY = Path("/run/eyrie-systemd-sandbox.json")
"""Which sandboxes (of any test process) are alive and which marker dirs they created: the last one out
removes them, so concurrent sandboxes never pull the marker from under each other."""

CGROUP_PREFIX = "eyrie-sandbox-"
"""Each sandbox's manager gets ``/<CGROUP_PREFIX><random>`` as its root cgroup."""
_TRACKING_CONTROLLERS = ("", "name=systemd")
"""The controller field of ``/proc/<pid>/cgroup`` lines for the unified and the named systemd hierarchy."""

START_TIMEOUT = 15.0
STOP_TIMEOUT = 60.0
_POLL = 0.05


def tracking_hierarchies() -> list[Path]:
    """The hierarchies systemd tracks processes with: the root on pure v2, else ``unified`` + ``systemd``."""
    if (_CGROUP_ROOT / "cgroup.controllers").exists():
        return [_CGROUP_ROOT]
    named = _CGROUP_ROOT / "systemd"
    if not (named / "cgroup.procs").exists():
        return []
    unified = _CGROUP_ROOT / "unified"
    return [unified, named] if (unified / "cgroup.controllers").exists() else [named]


def unavailable_reason() -> str | None:
    """Why a sandboxed manager cannot run here, or None when it can."""
    if not SYSTEMD_BINARY.exists():
        return f"systemd is not installed ({SYSTEMD_BINARY} is missing)"
    if shutil.which("systemctl") is None:
        return "systemctl is not installed"
    if os.geteuid() != 0:
        return "confining a systemd --user manager to a private cgroup needs root"
    hierarchies = tracking_hierarchies()
    if not hierarchies:
        return f"no cgroup hierarchy under {_CGROUP_ROOT} that systemd can track processes with"
    for hierarchy in hierarchies:
        if not os.access(hierarchy, os.W_OK):
            return f"cgroup hierarchy {hierarchy} is not writable"
    return None


def _start_time(pid: str) -> str | None:
    info = read_stat(int(pid))
    return str(info.start_ticks) if info is not None else None


@dataclass(frozen=True)
class CgroupSnapshot:
    """Every process's membership in the tracking hierarchies (the unified one and ``name=systemd``: those a
    manager moves processes in) at one moment, keyed by pid and start time (pids get reused). Controller
    hierarchies are left out: other software on the machine legitimately moves processes there."""

    memberships: Mapping[tuple[int, str], str]

    @classmethod
    def take(cls) -> CgroupSnapshot:
        found: dict[tuple[int, str], str] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            started = _start_time(entry.name)
            try:
                lines = Path(f"/proc/{entry.name}/cgroup").read_text().splitlines()
            except OSError:
                continue
            cgroup = "\n".join(line for line in lines if line.split(":")[1] in _TRACKING_CONTROLLERS)
            if started is not None:
                found[(int(entry.name), started)] = cgroup
        return cls(found)

    def moved_since(self, before: CgroupSnapshot, *, own: str) -> list[str]:
        """Processes alive at both moments whose cgroup changed, described for an assertion message.

        A move into another sandbox's cgroups is that sandbox confining its own new child (seen mid-fork when
        sandboxes run concurrently) and is not reported; a move into ``own``, or anywhere else, is.
        """
        moved = []
        for key, cgroup in self.memberships.items():
            old = before.memberships.get(key)
            if old is not None and old != cgroup and not _in_other_sandbox(cgroup, own):
                old_line = " ".join(old.split())
                new_line = " ".join(cgroup.split())
                moved.append(f"pid {key[0]} ({_comm(key[0])}): {old_line} -> {new_line}")
        return moved


def _in_other_sandbox(cgroup: str, own: str) -> bool:
    paths = [line.split(":", 2)[2] for line in cgroup.splitlines()]
    return bool(paths) and all(
        p.startswith(f"/{CGROUP_PREFIX}") and not p.startswith(f"/{own}/") for p in paths
    )


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@contextlib.contextmanager
def _registry() -> Iterator[dict[str, list[str]]]:
    """The shared marker bookkeeping, read and written under an exclusive lock."""
    fd = os.open(_REGISTRY_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            state: dict[str, list[str]] = json.loads(_REGISTRY.read_text())
        except FileNotFoundError:
            state = {"holders": [], "created": []}
        yield state
        if state["holders"] or state["created"]:
            _REGISTRY.write_text(json.dumps(state))
        else:
            _REGISTRY.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _holder_alive(holder: str) -> bool:
    pid = int(holder.split("-", 1)[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _marker_dir() -> Iterator[None]:
    """``/run/systemd/system`` exists in the block; dirs sandboxes created go when the last one ends."""
    holder = f"{os.getpid()}-{uuid.uuid4().hex}"
    with _registry() as state:
        missing = []
        for path in (MARKER_DIR.parent, MARKER_DIR):
            if not path.exists():
                path.mkdir(mode=0o755)
                missing.append(str(path))
        state["created"] += missing
        state["holders"].append(holder)
    try:
        yield
    finally:
        with _registry() as state:
            state["holders"] = [h for h in state["holders"] if h != holder and _holder_alive(h)]
            if not state["holders"]:
                for created in reversed(state["created"]):
                    with contextlib.suppress(OSError):  # gone, or someone put something in it
                        os.rmdir(created)
                state["created"] = []


def _cgroup_procs(directory: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _dirs, _files in os.walk(directory):
        with contextlib.suppress(FileNotFoundError):
            pids.update(int(line) for line in (Path(dirpath) / "cgroup.procs").read_text().split())
    return pids


def _confine(procs_files: list[bytes]) -> Callable[[], None]:
    """Runs in the forked child before exec: move it into the private cgroups, or fail so exec never runs."""

    def move_self() -> None:
        for procs in procs_files:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    return move_self


class UserManager:
    """One sandboxed ``systemd --user`` manager; start it through `user_manager`, which also tears it down."""

    def __init__(self, root: Path, runtime_dir: Path, cgroup_name: str, extra_env: Mapping[str, str]) -> None:
        self.root = root
        self.cgroup_name = cgroup_name
        self.home = root / "home"
        self.config_home = root / "config"
        self.unit_dir = self.config_home / "systemd" / "user"
        self.boot_id_file = root / "boot_id"
        self.log_path = root / "units.log"
        self.runtime_dir = runtime_dir
        for directory in (self.home, self.unit_dir, root / "data", root / "state", root / "cache"):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._route_output(root / "data" / "systemd" / "user" / "service.d")
        runtime_dir.chmod(0o700)
        self.boot_id_file.write_text(f"{uuid.uuid4()}\n")
        user = pwd.getpwuid(os.getuid()).pw_name
        path = [str(Path(sys.executable).parent), *os.environ.get("PATH", os.defpath).split(os.pathsep)]
        self.env: dict[str, str] = {
            "PATH": os.pathsep.join(dict.fromkeys(p for p in path if p)),
            "HOME": str(self.home),
            "USER": user,
            "LOGNAME": user,
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "XDG_CONFIG_HOME": str(self.config_home),
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CACHE_HOME": str(root / "cache"),
            "EYRIE_BOOT_ID_FILE": str(self.boot_id_file),
            **extra_env,
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def _route_output(self, dropin_dir: Path) -> None:
        """Without journald, service output would be lost: a type-wide drop-in outside ``unit_dir`` (so
        install tests see only their own files there) appends every service's stdout and stderr to
        ``log_path``."""
        dropin_dir.mkdir(parents=True, exist_ok=True)
        (dropin_dir / "00-sandbox-output.conf").write_text(
            f"[Service]\nStandardOutput=append:{self.log_path}\nStandardError=append:{self.log_path}\n"
        )

    # --- what tests use

    @property
    def pid(self) -> int:
        """The running manager's pid."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("the sandboxed systemd --user manager is not running")
        return self._proc.pid

    @property
    def boot_id(self) -> str:
        """The current value in the file ``EYRIE_BOOT_ID_FILE`` names."""
        return self.boot_id_file.read_text().strip()

    def systemctl(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """``systemctl --user ARGS`` against this manager; with ``check`` a failure raises with its output."""
        result = subprocess.run(
            ["systemctl", "--user", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"systemctl --user {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\n"
                f"--- units.log (tail) ---\n{self.log_tail()}"
            )
        return result

    def show(self, unit: str, prop: str) -> str:
        """One property of a unit (``systemctl --user show -p PROP --value UNIT``)."""
        return self.systemctl("show", "-p", prop, "--value", unit).stdout.strip()

    def is_active(self, unit: str) -> str:
        """``active``, ``inactive``, ``activating``, ``failed``…"""
        return self.systemctl("is-active", unit, check=False).stdout.strip()

    def main_pid(self, unit: str) -> int | None:
        pid = int(self.show(unit, "MainPID") or 0)
        return pid or None

    def write_unit(self, name: str, text: str) -> Path:
        """Write a unit file into the manager's unit dir (run ``daemon-reload`` afterwards)."""
        path = self.unit_dir / name
        path.write_text(text)
        return path

    def wait_until(self, predicate: Callable[[], T], *, timeout: float = 10.0, what: str = "condition") -> T:
        """Poll ``predicate`` until it returns something truthy; fail with the units log after ``timeout``."""
        deadline = time.monotonic() + timeout
        last: T | None = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(_POLL)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what} (last: {last!r})\n"
            f"--- units.log (tail) ---\n{self.log_tail()}"
        )

    def cgroup_pids(self) -> set[int]:
        """Every process in the manager's cgroup subtree (the manager included while it runs)."""
        pids: set[int] = set()
        for hierarchy in tracking_hierarchies():
            pids |= _cgroup_procs(hierarchy / self.cgroup_name)
        return pids

    def log_tail(self, lines: int = 40) -> str:
        """The end of ``log_path``: what the services (and the manager itself) wrote to stdout and stderr."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def reboot(
        self,
        *,
        new_boot_id: bool = False,
        timeout: float = STOP_TIMEOUT,
        start_timeout: float = START_TIMEOUT,
    ) -> list[int]:
        """``systemctl --user exit``, wait (``timeout``) for the manager to go, kill what is left in its
        subtree (the power goes off), optionally write a new boot id, then start a fresh manager on the same
        dirs and wait (``start_timeout``) until its start-up jobs, enabled units included, are done.

        Returns the pids that outlived the manager and had to be killed.
        """
        killed = self._shutdown(timeout)
        if new_boot_id:
            self.boot_id_file.write_text(f"{uuid.uuid4()}\n")
        self.start(timeout=start_timeout)
        return killed

    # --- lifecycle

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start a confined manager and wait until ``is-system-running`` says running (or degraded)."""
        procs_files = []
        for hierarchy in tracking_hierarchies():
            scope = hierarchy / self.cgroup_name / "init.scope"
            scope.mkdir(parents=True, exist_ok=True)
            procs_files.append(bytes(scope / "cgroup.procs"))
        argv = [
            str(SYSTEMD_BINARY),
            "--user",
            # "console" means /dev/console and "auto" the machine's kmsg: the sandboxed manager stays quiet.
            "--log-target=null",
        ]
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_confine(procs_files),  # confinement happens before exec
                    cwd=self.home,
                )
            except subprocess.SubprocessError as exc:
                raise RuntimeError(f"could not confine systemd --user to {self.cgroup_name}: {exc}") from exc
        cgroup = Path(f"/proc/{self._proc.pid}/cgroup").read_text()
        if f"/{self.cgroup_name}/init.scope" not in cgroup:
            self._proc.kill()
            self._proc.wait()
            raise RuntimeError(f"systemd --user is not in its private cgroup: {cgroup}")
        self.wait_until(self._running, timeout=timeout, what="systemd --user to finish starting up")

    def _running(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"systemd --user exited during start-up\n{self.log_tail()}")
        state = self.systemctl("is-system-running", check=False, timeout=5).stdout.strip()
        return state in ("running", "degraded")

    def close(self) -> None:
        """Stop the manager and remove everything it left in the cgroup tree."""
        self._shutdown(STOP_TIMEOUT)

    def _shutdown(self, timeout: float) -> list[int]:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.systemctl("exit", check=False, timeout=10)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        killed = self._kill_leftovers()
        self._remove_cgroups()
        return killed

    def _kill_leftovers(self) -> list[int]:
        killed: list[int] = []
        deadline = time.monotonic() + 10
        while pids := self.cgroup_pids():
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {sorted(pids)} in {self.cgroup_name} survived SIGKILL")
            for pid in pids - set(killed):
                if self._kill_if_ours(pid):
                    killed.append(pid)
            time.sleep(_POLL)
        return killed

    def _kill_if_ours(self, pid: int) -> bool:
        """SIGKILL ``pid`` through a pidfd, after checking that pidfd's process is in our subtree."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        try:
            if f"/{self.cgroup_name}/" not in Path(f"/proc/{pid}/cgroup").read_text():
                return False
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            return True
        except (ProcessLookupError, FileNotFoundError):
            return False
        finally:
            os.close(pidfd)

    def _remove_cgroups(self) -> None:
        """Remove ``<hierarchy>/<name>`` in every hierarchy (controllers too), deepest first."""
        for hierarchy in [_CGROUP_ROOT, *(p for p in _CGROUP_ROOT.iterdir() if p.is_dir())]:
            top = hierarchy / self.cgroup_name
            if not top.is_dir():
                continue
            dirs = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
            for directory in dirs:
                _rmdir_retrying(directory)


def _rmdir_retrying(directory: Path) -> None:
    """A cgroup dir is busy for a moment after its last process died."""
    deadline = time.monotonic() + 5
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(_POLL)


@contextlib.contextmanager
def user_manager(tmp_path: Path, *, extra_env: Mapping[str, str] | None = None) -> Iterator[UserManager]:
    """A running sandboxed ``systemd --user`` under ``tmp_path``; skips the test where that cannot run.

    ``extra_env`` goes into the manager's environment (so every unit gets it) and into ``manager.env``.
    """
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cgroup_name = f"{CGROUP_PREFIX}{uuid.uuid4().hex[:12]}"
    before = CgroupSnapshot.take()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_marker_dir())
            runtime_dir = Path(tempfile.mkdtemp(prefix="eyrie-sd-"))  # short: AF_UNIX paths max 108 bytes
            stack.callback(shutil.rmtree, runtime_dir, ignore_errors=True)
            manager = UserManager(tmp_path / "systemd", runtime_dir, cgroup_name, extra_env or {})
            stack.callback(manager.close)
            manager.start()
            yield manager
    finally:
        moved = CgroupSnapshot.take().moved_since(before, own=cgroup_name)
        if moved:
            raise AssertionError("processes outside the sandbox changed cgroup:\n  " + "\n  ".join(moved))
