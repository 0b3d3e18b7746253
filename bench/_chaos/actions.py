"""What the soak does to a real eyried: start and SIGKILL it, signal it, write fleet.yaml, run eyriectl,
kill agents and their groups, and squat on ports. Everything it starts carries this run's tag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .invariants import daemon_answers
from .plan import Edit, Fault, FaultKind
from .procs import RUN_VAR, snapshot

__all__ = ["Actions", "Daemon"]

_SQUATTER = """
import socket, sys, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
until = time.monotonic() + 10
while True:
    try:
        sock.bind(("127.0.0.1", int(sys.argv[1])))
        break
    except OSError:
        if time.monotonic() > until:
            sys.exit(1)
        time.sleep(0.005)
sock.listen(1)
while True:
    time.sleep(3600)
"""
"""A stranger on an agent's port: binds it as soon as it is free, then holds it."""

_EYRIECTL = str(Path(sys.executable).with_name("eyriectl"))
"""The eyriectl installed beside this interpreter (the checkout's venv)."""

_START_DEADLINE = 30.0
"""Seconds a new eyried may take to answer on its socket."""

_EDIT_GAP = 0.05
"""Seconds between the edits of a SIGHUP storm."""


def _tagged_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "EYRIE_HOME": str(home), RUN_VAR: str(home), **extra}
    env.pop("NOTIFY_SOCKET", None)
    return env


class Daemon:
    """The eyried of the soak's home, started and killed from outside."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start eyried and wait until it answers (as systemd waits for READY=1 before it sends a signal)."""
        with open(self.home / "eyried.log", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor.daemon", "--home", str(self.home), "--log-level", "info"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_tagged_env(self.home),
                start_new_session=True,
            )
        self.starts += 1
        until = time.monotonic() + _START_DEADLINE
        while self.pid() is not None and time.monotonic() < until:
            if daemon_answers(self.home / "run" / "eyried.sock"):
                return
            time.sleep(0.02)

    def pid(self) -> int | None:
        """The pid of our eyried while it lives (a re-exec keeps it)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        return self.proc.pid

    def signal(self, signum: int) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signum)
        return True

    def kill(self) -> None:
        if self.signal(signal.SIGKILL):
            assert self.proc is not None
            self.proc.wait(10)

    def ensure(self) -> bool:
        """Start eyried if no daemon of this run lives; True when one had to be started."""
        if self.pid() is not None or any(p.is_daemon for p in snapshot(str(self.home)).values()):
            return False
        self.start()
        return True


class Actions:
    """Fires the planner's faults; counts them by kind and keeps the notes of what could not be done."""

    def __init__(self, home: Path, daemon: Daemon) -> None:
        self.home = home
        self.daemon = daemon
        self.faults: Counter[str] = Counter()
        self.edits: Counter[str] = Counter()
        self.stopped: set[str] = set()
        self.notes: list[str] = []
        self.squatters: list[subprocess.Popen[bytes]] = []

    def fire(self, fault: Fault) -> None:
        self.faults[fault.kind.value] += 1
        kind = fault.kind
        if kind is FaultKind.KILL_AGENT:
            self._kill(fault.target, group=False)
        elif kind is FaultKind.KILL_GROUP:
            self._kill(fault.target, group=True)
        elif kind is FaultKind.KILL_DAEMON:
            self.daemon.kill()
            self.daemon.start()
        elif kind is FaultKind.DAEMON_DOWN:
            self.daemon.kill()
            for edit in fault.edits:
                self._write(edit)
            self.daemon.start()
        elif kind is FaultKind.REEXEC:
            self._signal(signal.SIGUSR2, kind)
        elif kind is FaultKind.HUP_STORM:
            self._storm(fault.edits)
        elif kind is FaultKind.HUP_DURING_REEXEC:
            self._signal(signal.SIGUSR2, kind)
            time.sleep(fault.delay)
            self._storm(fault.edits)
        elif kind in (FaultKind.STOP, FaultKind.START):
            self._ctl(kind.value, fault.target)
        elif kind is FaultKind.SQUAT:
            self._squat(fault.target)
        time.sleep(fault.pause)

    def _signal(self, signum: int, why: FaultKind) -> None:
        if not self.daemon.signal(signum):
            self.notes.append(f"{why.value}: no eyried to signal")

    def _storm(self, edits: tuple[Edit, ...]) -> None:
        for edit in edits:
            self._write(edit)
            self._signal(signal.SIGHUP, FaultKind.HUP_STORM)
            time.sleep(_EDIT_GAP)

    def _write(self, edit: Edit) -> None:
        """Replace fleet.yaml as an editor does: a temp file renamed over it."""
        self.edits[edit.kind.value] += 1
        path = self.home / "fleet.yaml"
        tmp = path.with_suffix(".chaos-tmp")
        tmp.write_text(edit.text)
        os.replace(tmp, path)

    def record(self, name: str) -> dict[str, Any]:
        """The instance.json of ``name`` as it is now ({} when none can be read)."""
        for path in (self.home / "instances").glob("*/instance.json"):
            try:
                data: dict[str, Any] = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if data.get("name") == name:
                return data
        return {}

    def _kill(self, name: str, *, group: bool) -> None:
        data = self.record(name)
        target = data.get("pgid" if group else "pid")
        if not target or data.get("status") != "running":
            self.notes.append(f"kill {name}: not running ({data.get('status')})")
            return
        try:
            if group:
                os.killpg(int(target), signal.SIGKILL)
            else:
                os.kill(int(target), signal.SIGKILL)
        except ProcessLookupError:
            self.notes.append(f"kill {name}: {target} already gone")

    def _ctl(self, command: str, name: str) -> None:
        argv = [_EYRIECTL, "--home", str(self.home), command, name]
        env = {k: v for k, v in os.environ.items() if k != RUN_VAR}
        try:
            done = subprocess.run(argv, capture_output=True, timeout=60, env=env, check=False)
        except subprocess.TimeoutExpired:
            self.notes.append(f"eyriectl {command} {name}: no answer within 60 s")
            return
        if done.returncode != 0:
            said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            self.notes.append(
                f"eyriectl {command} {name}: exit {done.returncode}: {said[-1] if said else ''}"
            )
            return
        if command == "stop":
            self.stopped.add(name)
        else:
            self.stopped.discard(name)

    def _squat(self, name: str) -> None:
        data = self.record(name)
        port, pgid = data.get("port"), data.get("pgid")
        if not port or not pgid or data.get("status") != "running":
            self.notes.append(f"squat {name}: not running ({data.get('status')})")
            return
        self.squatters.append(
            subprocess.Popen(
                [sys.executable, "-c", _SQUATTER, str(port)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_tagged_env(self.home, CHAOS_ROLE="squatter"),
                start_new_session=True,
            )
        )
        try:
            os.killpg(int(pgid), signal.SIGKILL)
        except ProcessLookupError:
            self.notes.append(f"squat {name}: group {pgid} already gone")

    def end_squatters(self) -> None:
        for squatter in self.squatters:
            squatter.kill()
            squatter.wait(10)
        self.squatters.clear()
