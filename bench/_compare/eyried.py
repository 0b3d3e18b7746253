"""The eyried driver: a real daemon on a home of its own, driven from outside through its CLI and API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from supervisor.client import ControlClient
from supervisor.control.schema import ReloadResult
from supervisor.engine.events import Event
from supervisor.errors import DaemonNotRunning
from supervisor.paths import Home

__all__ = ["EYRIECTL", "Eyried", "fleet_text"]

EYRIECTL = str(Path(sys.executable).parent / "eyriectl")


def _ports() -> tuple[int, int]:
    """This benchmark's port range, far from the test suites' 43000–43999; ``EYRIE_BENCH_PORTS=FIRST-LAST``
    moves it (two runs side by side must not share one)."""
    first, _, last = os.environ.get("EYRIE_BENCH_PORTS", "45000-46999").partition("-")
    return int(first), int(last)


PORTS = _ports()

_FLEET_HEAD = f"""\
version: 1
daemon:
  ports: {{first: {PORTS[0]}, last: {PORTS[1]}}}
defaults:
  restart: {{policy: always, initial_delay: 0, factor: 2, max_delay: 1s, jitter: 0, max_retries: 1000000}}
  health: {{interval: 10s, timeout: 3s, failure_threshold: 3, start_timeout: 30s}}
  stop_timeout: 5s
frameworks:
  embedded:
    command: [sleep, infinity]
    ready: {{kind: process, seconds: 0}}
    live: {{kind: process, seconds: 0}}
"""


def fleet_text(n: int, *, confined: bool, changed: str | None = None) -> str:
    """N sleepers; ``sandbox: off`` unless ``confined``; ``changed`` names one instance given an extra
    environment variable (a reload with one change)."""
    head = _FLEET_HEAD if confined else _FLEET_HEAD + "    sandbox: off\n"
    lines = []
    for i in range(n):
        name = f"sleeper-{i:04d}"
        lines.append(f"  - name: {name}\n")
        if name == changed:
            lines.append("    env: {BENCH_CHANGE: '1'}\n")
    return head + "instances:\n" + "".join(lines)


class Eyried:
    """One home, one daemon at a time; every process it starts carries ``env``'s marker."""

    name = "eyried"

    def __init__(self, root: Path, n: int, env: dict[str, str]) -> None:
        self.home = Home(root / "eyried-home")
        self.home.root.mkdir(parents=True)
        self.n = n
        self.env = {**env, "EYRIE_HOME": str(self.home.root)}
        self.env.pop("NOTIFY_SOCKET", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_fleet(confined=False)

    def write_fleet(self, *, confined: bool, changed: str | None = None) -> None:
        (self.home.root / "fleet.yaml").write_text(fleet_text(self.n, confined=confined, changed=changed))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def launch(self) -> int:
        """Start the daemon on the home as it is (fleet file written; provisioned or not)."""
        with (self.home.root / "eyried.err").open("ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "supervisor.daemon",
                    "--home",
                    str(self.home.root),
                    "--log-level",
                    "warning",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.env,
            )
        return self.proc.pid

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [EYRIECTL, "--home", str(self.home.root), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"eyriectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def stop_fleet(self) -> None:
        self.ctl("stop", "--all")

    def stop_fleet_api(self) -> None:
        """The fleet stopped through one API request from this process, as supervisord's XML-RPC call is: the
        figure without a CLI's start-up."""
        anyio.run(self._stop_many)

    async def _stop_many(self) -> None:
        names = [f"sleeper-{i:04d}" for i in range(self.n)]  # as the fleet file names them: no listing first
        async with ControlClient(self.home) as client:
            answers = await client.stop_many(names, wait=True)
        if answers is None:
            raise RuntimeError("this eyried has no POST /v1/stop")
        if failed := [answer for answer in answers if isinstance(answer, Exception)]:
            raise RuntimeError(f"{len(failed)} stops failed, the first: {failed[0]}")

    def stop_daemon(self) -> None:
        """SIGTERM: the daemon stops its fleet and exits, releasing its port claims."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill_daemon(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        self.stop_daemon()

    def log_tail(self) -> str:
        return _tail(self.home.root / "eyried.err")

    def running_pids(self) -> dict[str, int]:
        """Name → pid of every instance the daemon reports running (GET /v1/instances)."""
        return anyio.run(self._running_pids)

    async def _running_pids(self) -> dict[str, int]:
        async with ControlClient(self.home) as client:
            return {v.name: v.pid for v in await client.list_instances() if v.status == "running" and v.pid}

    def wait_adopted(self, old: dict[str, int], timeout: float = 120) -> int:
        """Poll /v1/instances every 10 ms until every instance runs with its old pid: the monotonic ns."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(DaemonNotRunning):
                if self.running_pids() == old:
                    return time.monotonic_ns()
            time.sleep(0.01)
        raise RuntimeError(f"the new daemon did not adopt all {len(old)} instances within {timeout:.0f} s")

    def wait_adopted_cli(self, old: dict[str, int], timeout: float = 120) -> int:
        """Run ``eyriectl ps --json`` in a loop until it shows every instance running with its old pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.ctl("ps", "--json", check=False)
            if result.returncode == 0:
                rows = json.loads(result.stdout)
                seen = {r["name"]: r.get("pid") for r in rows if r.get("status") == "running"}
                if seen == old:
                    return time.monotonic_ns()
            time.sleep(0.01)
        raise RuntimeError(
            f"eyriectl ps did not show all {len(old)} instances adopted within {timeout:.0f} s"
        )

    def daemon_event_ns(self, after_ns: int, timeout: float = 30) -> int | None:
        """When the daemon announced its fleet up (a ``daemon`` event naming adoption or readiness), in
        monotonic ns, or None when this daemon emits no such event within ``timeout`` (it may come after every
        instance is seen running: it waits until all have come to rest)."""
        deadline = time.monotonic() + timeout
        while True:
            events = anyio.run(self._recent)
            offset = time.time_ns() - time.monotonic_ns()
            for event in events:
                words = f"{event.detail} {json.dumps(event.data)}".lower()
                at = int(event.time.timestamp() * 1e9) - offset
                if event.event == "daemon" and at >= after_ns and ("adopt" in words or "ready" in words):
                    return at
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    async def _recent(self) -> list[Event]:
        async with ControlClient(self.home) as client:
            return await client.recent_events(500)

    def reload(self) -> tuple[float, int]:
        """A reload's round trip in ms, and how many instances it restarted."""
        started = time.perf_counter()
        result = anyio.run(self._reload)
        elapsed = (time.perf_counter() - started) * 1000
        if not result.ok:
            raise RuntimeError(f"reload rejected: {result.error} {result.problems}")
        return elapsed, len(result.restarted)

    async def _reload(self) -> ReloadResult:
        async with ControlClient(self.home) as client:
            return await client.reload()

    def ps_ms(self) -> float:
        started = time.perf_counter()
        self.ctl("ps")
        return (time.perf_counter() - started) * 1000


def own_env(marker: str) -> dict[str, str]:
    """This process's environment plus the run's marker, for every process the bench starts."""
    return {**os.environ, "EYRIE_BENCH_RUN": marker}


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
