"""What the survival and reboot tests share: a small fleet, eyried installed under a sandboxed user manager,
and looks at the real process table (trees per instance, zombies)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import psutil

from supervisor.client import ControlClient
from supervisor.control.schema import InstanceView
from supervisor.paths import Home
from supervisor.systemd.install import install
from supervisor.systemd.names import unit_name
from supervisor.testing import FAULTY_AGENT
from tests._daemon import embedded, fleet_yaml, pid_alive
from tests.sandbox.systemd import UserManager

NAMES = ("alpha", "beta", "gamma")
SURVIVAL_DEFAULTS = """\
defaults:
  restart: {policy: on-failure, initial_delay: 100ms, factor: 2, max_delay: 1s, jitter: 0, reset_after: 60s,
            max_retries: 30, cooldown: 1s}
  health: {interval: 500ms, timeout: 1s, failure_threshold: 3, start_timeout: 15s}
  stop_timeout: 5s
"""
"""Fast, and forgiving: many retries and a short cooldown, so an agent a test keeps failing is retried instead
of ending in ``error``."""
MARKER = "EYRIE_INSTANCE_ID"


def survival_fleet(*instances: str) -> str:
    return fleet_yaml(*instances, defaults=SURVIVAL_DEFAULTS)


def three_embedded() -> str:
    return survival_fleet(*(embedded(name) for name in NAMES))


def with_grandchild(name: str) -> str:
    """An instance whose agent leaves a grandchild in its own session (its pid in state/grandchild.pid)."""
    argv = f'"-m", "{FAULTY_AGENT}", "--http", "--grandchild", "{{instance_dir}}/state/grandchild.pid"'
    command = f'["{{python}}", {argv}]'
    return embedded(name, f"command: {command}\nready: {{kind: http, path: /ready}}\nstop_timeout: 1s")


def instances(home: Path) -> dict[str, dict[str, Any]]:
    """``instance.json`` of every instance under ``home``, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in (home / "instances").glob("*/instance.json"):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            found[data["name"]] = data
    return found


def gone(pid: int) -> bool:
    """No trace in the process table: neither running nor a zombie waiting to be reaped."""
    return not Path(f"/proc/{pid}").exists()


def running(home: Path, *names: str) -> dict[str, dict[str, Any]]:
    """Every named instance, once each runs with a live pid; {} until then."""
    found = instances(home)
    picked = {n: found.get(n, {}) for n in names}
    ok = all(i.get("status") == "running" and pid_alive(i.get("pid")) for i in picked.values())
    return picked if ok else {}


def roots(pids: set[int]) -> dict[str, list[int]]:
    """Instance id → those of ``pids`` that head a tree of that instance (carry its marker; their parent
    does not)."""
    markers: dict[int, str] = {}
    parents: dict[int, int] = {}
    for proc in psutil.process_iter(["pid", "ppid"]):
        if proc.pid not in pids:
            continue
        with contextlib.suppress(psutil.Error):
            marker = proc.environ().get(MARKER)
            if marker and proc.status() != psutil.STATUS_ZOMBIE:
                markers[proc.pid] = marker
                parents[proc.pid] = proc.info["ppid"]
    trees: dict[str, list[int]] = {}
    for pid, marker in markers.items():
        if markers.get(parents[pid]) != marker:
            trees.setdefault(marker, []).append(pid)
    return trees


def fd_targets(pid: int) -> list[str]:
    """What each open descriptor of ``pid`` points at, sorted (numbers left out: they may be reassigned)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    targets = []
    for entry in fd_dir.iterdir():
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(entry)
            targets.append("socket" if target.startswith("socket:") else target)
    return sorted(targets)


async def _stop(home: Path, name: str) -> InstanceView:
    async with ControlClient(Home(home)) as client:
        return await client.stop(name, wait=True)


def stop_instance(home: Path, name: str) -> InstanceView:
    """``eyriectl stop NAME --wait``, through the control API."""
    return anyio.run(_stop, home, name)


async def _get(home: Path, name: str) -> InstanceView:
    async with ControlClient(Home(home)) as client:
        return await client.get_instance(name)


def view(home: Path, name: str) -> InstanceView:
    return anyio.run(_get, home, name)


class Installed:
    """eyried installed by ``install()`` (what ``eyriectl install`` runs) and running under ``manager``."""

    def __init__(self, manager: UserManager, home: Path) -> None:
        self.manager = manager
        self.home = home
        self.unit = unit_name(home, manager.env)

    @classmethod
    def start(
        cls,
        manager: UserManager,
        tmp_path: Path,
        fleet: str,
        *,
        watchdog_sec: float = 30,
        home: Path | None = None,
    ) -> Installed:
        """Install ``home`` (default ``tmp_path/eyrie``, not the default home) and start it."""
        home = home or tmp_path / "eyrie"
        home.mkdir(parents=True)
        (home / "fleet.yaml").write_text(fleet)
        steps = install(home=home, linger=False, watchdog_sec=watchdog_sec, env=manager.env)
        assert all(step.ok for step in steps), steps
        return cls(manager, home)

    def show(self, prop: str) -> str:
        return self.manager.show(self.unit, prop)

    @property
    def main_pid(self) -> int:
        pid = self.manager.main_pid(self.unit)
        assert pid is not None, f"{self.unit} has no main pid\n{self.manager.log_tail()}"
        return pid

    @property
    def restarts(self) -> int:
        return int(self.show("NRestarts"))

    def readies(self) -> int:
        """How many times an eyried image has said it is ready (its log goes to the sandbox's units.log)."""
        return self.manager.log_path.read_text(errors="replace").count('"event": "daemon_ready"')

    def wait_running(self, *names: str, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        return self.manager.wait_until(
            lambda: running(self.home, *names), timeout=timeout, what=f"{', '.join(names)} running"
        )

    def wait_main_pid_other_than(self, old: int, timeout: float = 30.0) -> int:
        def fresh() -> int:
            pid = self.manager.main_pid(self.unit)
            return pid if pid not in (None, old) and self.manager.is_active(self.unit) == "active" else 0

        return self.manager.wait_until(fresh, timeout=timeout, what="a new, active eyried")

    def trees(self) -> dict[str, int]:
        """Instance name → how many process trees of it run inside the manager's cgroups."""
        ids = {inst["id"]: name for name, inst in instances(self.home).items()}
        found = roots(self.manager.cgroup_pids())
        return {ids.get(marker, marker): len(pids) for marker, pids in found.items()}

    def signal_main(self, sig: signal.Signals) -> int:
        pid = self.main_pid
        os.kill(pid, sig)
        return pid
