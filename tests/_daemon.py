"""Run a real ``eyried`` in a test home and look at what it wrote, without going through its API."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

FAST_DEFAULTS = """\
defaults:
  restart: {policy: on-failure, initial_delay: 100ms, factor: 2, max_delay: 2s, jitter: 0, reset_after: 30s,
            max_retries: 5, cooldown: 0}
  health: {interval: 500ms, timeout: 1s, failure_threshold: 2, start_timeout: 15s}
  stop_timeout: 5s
"""


def fleet_yaml(*instances: str, defaults: str = FAST_DEFAULTS) -> str:
    if not instances:
        return f"version: 1\n{defaults}instances: []\n"
    return f"version: 1\n{defaults}instances:\n{''.join(instances)}"


SLEEPER_FRAMEWORK = """\
frameworks:
  sleeper:
    command: [sleep, infinity]
    ready: {kind: process, seconds: 0}
    live: {kind: process, seconds: 0}
    sandbox: off
"""


def sleeper_fleet(names: list[str], *, defaults: str = "") -> str:
    """A fleet of unconfined ``sleep infinity`` instances: agents that cost nothing, for tests of numbers."""
    members = "".join(f"  - name: {name}\n    framework: sleeper\n" for name in names)
    return f"version: 1\n{defaults}{SLEEPER_FRAMEWORK}instances:\n{members}"


def embedded(name: str, extra: str = "") -> str:
    text = f"  - name: {name}\n    framework: embedded\n"
    for line in extra.splitlines():
        text += f"    {line}\n"
    return text


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def logged_order(log: str, *events: str) -> list[str]:
    """The given log events of the last daemon image in ``log`` (JSON lines), in the order it logged them."""
    seen: list[str] = []
    for line in log.splitlines():
        if line.startswith("{"):
            event = json.loads(line).get("event")
            if event == "daemon_starting":
                seen = []
            if event in events:
                seen.append(event)
    return seen


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class DaemonProcess:
    """One ``eyried`` subprocess on ``home``; `close` stops it and everything it may have left."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = home / "eyried.out"

    @property
    def fleet_file(self) -> Path:
        return self.home / "fleet.yaml"

    def write_fleet(self, text: str) -> None:
        self.fleet_file.write_text(text)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full_env = {**os.environ, "EYRIE_HOME": str(self.home), **(env or {})}
        full_env.pop("NOTIFY_SOCKET", None)
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor.daemon", "--home", str(self.home), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
            )
        return self.proc

    def wait_serving(self, timeout: float = 30.0) -> None:
        sock = self.home / "run" / "eyried.sock"

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"eyried exited with {self.proc.returncode}:\n{self.log()}")
            return sock.exists()

        wait_for(up, timeout, "eyried to serve its socket")

    def log(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def instances(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        root = self.home / "instances"
        if not root.is_dir():
            return found
        for path in root.glob("*/instance.json"):
            with contextlib.suppress(OSError, json.JSONDecodeError):
                data = json.loads(path.read_text())
                found[data["name"]] = data
        return found

    def instance(self, name: str) -> dict[str, Any]:
        return self.instances().get(name, {})

    def wait_status(self, name: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            inst = self.instance(name)
            return inst if inst.get("status") == status else {}

        return wait_for(check, timeout, f"{name} to be {status}")

    def wait_running(self, *names: str, timeout: float = 30.0) -> dict[str, int]:
        """Wait until every named instance runs with a live pid; return name → pid."""

        def running(name: str) -> dict[str, Any]:
            inst = self.instance(name)
            return inst if inst.get("status") == "running" and pid_alive(inst.get("pid")) else {}

        return {n: wait_for(functools.partial(running, n), timeout, f"{n} running")["pid"] for n in names}

    def wait_new_pid(self, name: str, old: int, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until ``name`` runs again with a pid other than ``old``."""

        def renewed() -> dict[str, Any]:
            inst = self.instance(name)
            fresh = inst.get("status") == "running" and inst.get("pid") != old and pid_alive(inst.get("pid"))
            return inst if fresh else {}

        return wait_for(renewed, timeout, f"{name} running with a new pid")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """Stop the daemon and, if it could not, every agent process it left behind."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.terminate(60)
            except subprocess.TimeoutExpired:
                self.kill()
        marker = str(self.home)
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("EYRIE_HOME", "") == marker or any(marker in a for a in proc.cmdline()):
                    proc.kill()


@contextlib.contextmanager
def running_daemon(home: Path, fleet: str, *args: str) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(home)
    daemon.write_fleet(fleet)
    try:
        daemon.start(*args)
        daemon.wait_serving()
        yield daemon
    finally:
        daemon.close()


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
