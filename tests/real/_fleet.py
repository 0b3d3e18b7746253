"""One framework's pair of real gateways under a real eyried, and what the tests read off them."""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from tests._cli import eyriectl, ok, ps
from tests._daemon import DaemonProcess, wait_for

FIGURES: dict[tuple[str, str], str] = {}
"""What the tier measured, printed at the end of the run: (framework, figure) → value."""

START_TIMEOUT = 180.0
"""How long a gateway may take to become ready: OpenClaw needs 8–12 s alone, much more beside a busy CI."""

_FLEET = """\
version: 1
defaults:
  restart: {{initial_delay: 200ms, jitter: 0}}
  health: {{interval: 2s, timeout: 5s, failure_threshold: 3, start_timeout: {start_timeout:g}s}}
instances:
  - name: {a}
    framework: {framework}
    model: {model_a}
  - name: {b}
    framework: {framework}
    model: {model_b}
    stop_timeout: 0s  # no time to drain: proves the SIGKILL path
"""


USER_STATE = {"openclaw": ".openclaw", "hermes": ".hermes"}
"""Where each program keeps its state in a user's home when nobody says otherwise."""


def measured(framework: str, what: str, value: str) -> None:
    """Keep a figure for the end of the run's summary."""
    FIGURES[(framework, what)] = value


class RealFleet:
    """Two instances of ``framework`` (``<framework>-a``, ``<framework>-b``) in a home of their own, run by
    eyried with the program's directory first on ``PATH`` (the only thing not built in) and ``HOME`` pointed
    at a user home of their own."""

    def __init__(self, framework: str, bindir: Path, root: Path) -> None:
        self.framework = framework
        self.a, self.b = f"{framework}-a", f"{framework}-b"
        self.user_home = root / "user"
        self.user_home.mkdir()
        home = root / "eyrie"
        home.mkdir()
        self.daemon = DaemonProcess(home)
        self.env = {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(self.user_home)}
        self.models = {self.a: "anthropic/claude-sonnet-4", self.b: "anthropic/claude-sonnet-4"}
        self.write_fleet()
        self.real_user_state_before = self.real_user_state()

    def real_user_state(self) -> tuple[bool, int]:
        """Whether the state directory of the program exists in the real user's home, and its mtime."""
        try:
            return True, (Path.home() / USER_STATE[self.framework]).stat().st_mtime_ns
        except FileNotFoundError:
            return False, 0

    @property
    def home(self) -> Path:
        return self.daemon.home

    def write_fleet(self) -> None:
        self.daemon.write_fleet(
            _FLEET.format(
                framework=self.framework,
                a=self.a,
                b=self.b,
                model_a=self.models[self.a],
                model_b=self.models[self.b],
                start_timeout=START_TIMEOUT,
            )
        )

    def start_daemon(self) -> float:
        """Start eyried; when it started (monotonic)."""
        started = time.monotonic()
        self.daemon.start(env=self.env)
        self.daemon.wait_serving(60)
        return started

    def close(self) -> None:
        self.daemon.close()

    def ctl(self, *args: str, timeout: float = 120) -> str:
        return ok(eyriectl(self.home, *args, timeout=timeout)).stdout

    def rows(self) -> dict[str, dict[str, Any]]:
        return ps(self.home)

    def record(self, name: str) -> dict[str, Any]:
        return self.daemon.instance(name)

    def instance_dir(self, name: str) -> Path:
        return self.home / "instances" / str(self.record(name)["id"])

    def config_file(self, name: str) -> Path:
        return Path(str(self.record(name)["config_path"]))

    def wait_ready(self, name: str, *, other_than: int | None = None) -> dict[str, Any]:
        """The ``ps`` row of ``name`` once its process passed the definition's readiness probe (phase
        running), and, with ``other_than``, runs under a pid other than that one."""

        def ready() -> dict[str, Any]:
            row = self.rows()[name]
            fresh = other_than is None or row["pid"] != other_than
            return row if row["phase"] == "running" and fresh and row["pid"] else {}

        return wait_for(ready, START_TIMEOUT, f"{name} ready")

    def wait_probed(self, name: str) -> dict[str, Any]:
        """The ``ps`` row of ``name`` once a liveness probe passed after this call (``last_seen`` moved)."""
        seen = self.rows()[name]["last_seen"]

        def probed() -> dict[str, Any]:
            row = self.rows()[name]
            return row if row["last_seen"] != seen else {}

        return wait_for(probed, 60, f"a liveness probe of {name} to pass")

    def tree(self, name: str) -> list[psutil.Process]:
        """Every process of ``name``'s tree: its children, and any that left it but carries its marker."""
        pid = self.record(name).get("pid")
        found: dict[int, psutil.Process] = {}
        if pid:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                found = {p.pid: p for p in [root, *root.children(recursive=True)]}
        instance_id = self.record(name)["id"]
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("EYRIE_INSTANCE_ID") == instance_id:
                    found.setdefault(proc.pid, proc)
        return list(found.values())


def seconds_since(iso: str) -> float:
    """Seconds from a recorded UTC timestamp to now."""
    return time.time() - datetime.fromisoformat(iso).timestamp()


def tree_rss_mib(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / (1 << 20)


def gone(procs: list[psutil.Process]) -> bool:
    """Whether every one of ``procs`` has ended (a zombie has)."""
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True
