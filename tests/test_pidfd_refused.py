"""Where the kernel refuses pidfds (before Linux 5.4, a seccomp filter, valgrind), no agent is ever started
beside one that runs: eyried refuses to start, leaves an earlier daemon's agents as they are, and a spawn
whose child cannot be watched ends that child before it fails.

The refusal is real: a seccomp filter (``tests/programs/refuse_syscall.py``) answers ``pidfd_open`` with
ENOSYS, as valgrind does, or EPERM, as older container profiles do.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests._daemon import DaemonProcess, kill_quietly, pid_alive, sleeper_fleet, wait_for

REFUSE = Path(__file__).parent / "programs" / "refuse_syscall.py"
PIDFD_OPEN = 434  # the same number on every architecture
FLEET = 3

RESTART_AT_ONCE = """\
defaults:
  restart: {policy: always, initial_delay: 0, factor: 2, max_delay: 1s, jitter: 0, max_retries: 1000}
"""


def _fleet(n: int) -> str:
    return sleeper_fleet([f"sleeper-{i}" for i in range(n)], defaults=RESTART_AT_ONCE)


def _refused(errno_name: str, *argv: str) -> list[str]:
    return [sys.executable, str(REFUSE), str(PIDFD_OPEN), errno_name, *argv]


def _members(home: Path) -> set[int]:
    """Live processes started for an instance of ``home`` (they carry its marker)."""
    found = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            if (
                env.get("EYRIE_HOME") == str(home)
                and "EYRIE_INSTANCE_ID" in env
                and proc.status() != "zombie"
            ):
                found.add(proc.pid)
    return found


def _start_refused(daemon: DaemonProcess, errno_name: str) -> subprocess.Popen[bytes]:
    """eyried on ``daemon``'s home with ``pidfd_open`` refused (its output goes to the daemon's log)."""
    env = {**os.environ, "EYRIE_HOME": str(daemon.home)}
    env.pop("NOTIFY_SOCKET", None)
    argv = _refused(errno_name, sys.executable, "-m", "supervisor.daemon", "--home", str(daemon.home))
    with open(daemon.output, "ab") as out:
        daemon.proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    return daemon.proc


def _exit_watching(
    proc: subprocess.Popen[bytes], home: Path, most: int, timeout: float = 60.0
) -> tuple[int, int]:
    """Wait for ``proc`` to exit, counting the home's processes meanwhile: its exit code, the most seen."""
    seen = 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        seen = max(seen, len(_members(home)))
        if seen > most:
            break  # the failure itself: stop at once rather than let it grow
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    return proc.returncode, max(seen, len(_members(home)))


@pytest.mark.parametrize("errno_name", ["ENOSYS", "EPERM"])
def test_a_fresh_start_refuses_and_starts_nothing(tmp_path: Path, errno_name: str) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.write_fleet(_fleet(FLEET))
    try:
        code, most = _exit_watching(_start_refused(daemon, errno_name), tmp_path, 0)
        assert (code, most) == (1, 0), daemon.log()[-3000:]
        assert "the kernel refuses pidfd_open" in daemon.log()
    finally:
        daemon.close()


def test_a_refused_daemon_leaves_the_fleet_to_the_next(tmp_path: Path) -> None:
    """SIGKILL of a working daemon, then one that cannot watch: it neither ends nor adds an agent, and the
    next working daemon adopts every one and restarts a killed one exactly once."""
    daemon = DaemonProcess(tmp_path)
    daemon.write_fleet(_fleet(FLEET))
    names = [f"sleeper-{i}" for i in range(FLEET)]
    try:
        daemon.start()
        daemon.wait_serving()
        before = daemon.wait_running(*names)
        daemon.kill()

        code, most = _exit_watching(_start_refused(daemon, "ENOSYS"), tmp_path, FLEET)
        assert (code, most) == (1, FLEET), daemon.log()[-3000:]
        assert _members(tmp_path) == set(before.values())

        daemon.start()
        daemon.wait_serving()
        assert daemon.wait_running(*names) == before
        kill_quietly(before["sleeper-0"])
        renewed = daemon.wait_new_pid("sleeper-0", before["sleeper-0"])["pid"]
        wait_for(lambda: len(_members(tmp_path)) == FLEET, what="the fleet back to its size")
        assert _members(tmp_path) == {renewed, before["sleeper-1"], before["sleeper-2"]}
        assert daemon.instance("sleeper-0")["total_restarts"] == 1
    finally:
        daemon.close()


_SPAWN = """
import json, os, sys
from pathlib import Path
from supervisor.engine.process import spawn
from supervisor.errors import StartFailed
env = {"PATH": os.environ["PATH"], "SPAWN_MARK": sys.argv[1]}
try:
    spawn(["sleep", "infinity"], env=env, cwd=Path("."), log_path=Path(sys.argv[2]))
    error = None
except StartFailed as exc:
    error = str(exc)
try:
    left = os.waitpid(-1, os.WNOHANG)[0]
except ChildProcessError:
    left = 0
print(json.dumps({"error": error, "child_left": left}))
"""


def test_a_spawn_that_cannot_watch_its_child_ends_it(tmp_path: Path) -> None:
    mark = f"refused-{os.getpid()}-{time.monotonic_ns()}"
    argv = _refused("ENOSYS", sys.executable, "-c", _SPAWN, mark, str(tmp_path / "agent.log"))
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)
        result = json.loads(out.stdout)
        assert "cannot watch the new process" in result["error"]
        assert "it was ended" in result["error"]
        assert result["child_left"] == 0  # no child at all: the spawned one was ended and reaped
        assert _marked(mark) == []
    finally:
        for pid in _marked(mark):
            kill_quietly(pid)


def _marked(mark: str) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("SPAWN_MARK") == mark and pid_alive(proc.pid):
                found.append(proc.pid)
    return found
