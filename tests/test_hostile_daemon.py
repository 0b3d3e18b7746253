"""A real eyried with hostile files in its home: it keeps supervising, answers promptly, reports what it
refused, and never starts a second agent for one name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from supervisor.client import ControlClient
from supervisor.control.schema import DaemonStatus, InstanceView, ReloadResult
from supervisor.errors import StopIncomplete
from supervisor.paths import Home
from tests._daemon import DaemonProcess, embedded, fleet_yaml, pid_alive, running_daemon, wait_for

BOMB = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)
).replace("*a", "x")
"""A fleet file of under 500 bytes whose aliases expand to 9**9 leaves."""


def _ps(home: Path, timeout: float = 5.0) -> list[InstanceView]:
    async def call() -> list[InstanceView]:
        with anyio.fail_after(timeout):
            async with ControlClient(Home(home)) as client:
                return await client.list_instances()

    return anyio.run(call)


def _status(home: Path) -> DaemonStatus:
    async def call() -> DaemonStatus:
        async with ControlClient(Home(home)) as client:
            return await client.status()

    return anyio.run(call)


def _reload(home: Path) -> ReloadResult:
    async def call() -> ReloadResult:
        async with ControlClient(Home(home)) as client:
            return await client.reload()

    return anyio.run(call)


def _act(home: Path, action: str, name: str) -> InstanceView:
    async def call() -> InstanceView:
        async with ControlClient(Home(home)) as client:
            method = getattr(client, action)
            view: InstanceView = await method(name, wait=True)
            return view

    return anyio.run(call)


def _request(home: Path, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(home / "run" / "eyried.sock"))
    with httpx.Client(transport=transport, base_url="http://eyried", timeout=10) as http:
        return http.request(method, path, **kwargs)


def _replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


class TestFleetFileHostile:
    def test_ps_answers_while_fleet_yaml_is_a_fifo(self, tmp_path: Path) -> None:
        """A FIFO at fleet.yaml: ps answers at once from the applied fleet; a reload is rejected; the agent
        keeps running and SIGHUP leaves the daemon alive."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            _replace_with_fifo(d.fleet_file)
            assert [v.name for v in _ps(tmp_path)] == ["alpha"]
            result = _reload(tmp_path)
            assert not result.ok and "FIFO" in result.error
            d.signal(signal.SIGHUP)
            wait_for(lambda: "reload_rejected" in d.log() and d.log().count("reload_rejected") >= 2)
            assert [v.name for v in _ps(tmp_path)] == ["alpha"]
            d.wait_running("alpha")  # still supervised (a slow machine may have restarted it meanwhile)

    def test_alias_bomb_neither_freezes_ps_nor_kills_the_daemon(self, tmp_path: Path) -> None:
        """A 'billion laughs' fleet.yaml: ps answers within a second, SIGHUP is rejected, memory stays low."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            d.write_fleet(BOMB)
            began = time.monotonic()
            assert [v.name for v in _ps(tmp_path)] == ["alpha"]
            assert time.monotonic() - began < 2.0
            d.signal(signal.SIGHUP)
            wait_for(lambda: "aliases expand" in d.log(), what="the reload to be rejected")
            assert d.proc is not None and d.proc.poll() is None
            rss = int(Path(f"/proc/{d.proc.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            assert rss < 400 * 1024 * 1024

    def test_self_referencing_symlink_fleet_yaml_on_sighup(self, tmp_path: Path) -> None:
        """fleet.yaml a symlink to itself: SIGHUP is a rejected reload, not the daemon's death."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            d.fleet_file.unlink()
            d.fleet_file.symlink_to(d.fleet_file)
            d.signal(signal.SIGHUP)
            wait_for(lambda: "reload_rejected" in d.log(), what="the reload to be rejected")
            status = _status(tmp_path)
            assert status.last_reload is not None and not status.last_reload.ok
            assert any("last reload rejected" in p for p in status.problems)
            d.wait_running("alpha")

    def test_removing_an_instance_whose_directory_is_a_symlink(self, tmp_path: Path) -> None:
        """A managed instance's directory replaced by a symlink, then removed from the file: the reload
        answers, the daemon lives on, and what the link pointed at is untouched."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            directory = tmp_path / "instances" / d.instance("beta")["id"]
            moved = tmp_path / "elsewhere"
            directory.rename(moved)
            directory.symlink_to(moved)
            d.write_fleet(fleet_yaml(embedded("alpha")))
            d.signal(signal.SIGHUP)
            wait_for(lambda: "reload_applied" in d.log() or "reload_failed" in d.log(), what="the reload")
            assert d.proc is not None and d.proc.poll() is None
            last = _status(tmp_path).last_reload
            assert last is not None and last.ok and last.removed == ["beta"], last
            assert (moved / "instance.json").exists()
            assert not pid_alive(pids["beta"]) and pid_alive(pids["alpha"])
            assert [v.name for v in _ps(tmp_path)] == ["alpha"]


class TestInstanceFilesHostile:
    def test_fifo_instance_json_does_not_freeze_the_daemon(self, tmp_path: Path) -> None:
        """A FIFO planted at an orphan's instance.json: ps answers, status names the file."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            stray = tmp_path / "instances" / "0f0f0f0f-0000-4000-8000-000000000000"
            stray.mkdir()
            os.mkfifo(stray / "instance.json")
            assert [v.name for v in _ps(tmp_path)] == ["alpha"]
            assert any("FIFO" in p for p in _status(tmp_path).problems)

    def test_truncated_instance_json_after_sigkill_is_not_duplicated(self, tmp_path: Path) -> None:
        """Daemon SIGKILLed, the running agent's instance.json truncated, daemon started: no second agent
        of that name, the first is ended (not left unsupervised), and status reports the file."""
        d = DaemonProcess(tmp_path)
        d.write_fleet(fleet_yaml(embedded("alpha")))
        try:
            d.start()
            d.wait_serving()
            pid = d.wait_running("alpha")["alpha"]
            alpha_id = d.instance("alpha")["id"]
            d.kill()
            path = tmp_path / "instances" / alpha_id / "instance.json"
            path.write_bytes(path.read_bytes()[:100])
            d.start()
            d.wait_serving()
            wait_for(lambda: not pid_alive(pid), what="the unsupervised agent to be ended")
            assert [p.name for p in (tmp_path / "instances").iterdir() if not p.name.startswith(".")] == [
                alpha_id
            ]
            wait_for(
                lambda: any(alpha_id in p and "cannot be read" in p for p in _status(tmp_path).problems),
                what="status to report the unreadable file",
            )
            [view] = _ps(tmp_path)
            assert view.name == "alpha" and not view.pid
        finally:
            d.close()

    def test_stray_directory_with_the_same_name_does_not_replace_the_instance(self, tmp_path: Path) -> None:
        """A copy of an instance's directory under a new id: after a restart the daemon neither swaps the
        real instance for it nor starts a second agent; the name is reported as contested."""
        d = DaemonProcess(tmp_path)
        d.write_fleet(fleet_yaml(embedded("alpha")))
        try:
            d.start()
            d.wait_serving()
            pid = d.wait_running("alpha")["alpha"]
            alpha_id = d.instance("alpha")["id"]
            d.terminate()
            stray_id = "ffffffff-ffff-4fff-bfff-ffffffffffff"
            stray = tmp_path / "instances" / stray_id
            shutil.copytree(tmp_path / "instances" / alpha_id, stray)
            data = json.loads((stray / "instance.json").read_text())
            data["id"] = stray_id
            data["created_at"] = "2099-01-01T00:00:00Z"
            (stray / "instance.json").write_text(json.dumps(data))
            d.start()
            d.wait_serving()
            wait_for(lambda: "contested" in d.log() or "instance directories" in d.log(), what="the refusal")
            assert not pid_alive(pid)
            status = _status(tmp_path)
            assert any("2 instance directories" in p for p in status.problems)
            assert all(not v.pid for v in _ps(tmp_path))
        finally:
            d.close()


class TestDaemonSettings:
    def test_control_tcp_and_log_level_come_from_the_fleet_file(self, tmp_path: Path) -> None:
        """daemon.control_tcp in the file starts the TCP listener; daemon.log_level silences info lines."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = f"daemon:\n  log_level: warning\n  control_tcp: {{enabled: true, port: {port}}}\n"
        fleet = fleet_yaml(embedded("alpha")).replace("version: 1\n", f"version: 1\n{settings}")
        with running_daemon(tmp_path, fleet) as d:
            d.wait_running("alpha")
            token_file = tmp_path / "run" / "control.token"  # made when the API is served, after the fleet
            token = wait_for(lambda: token_file.exists() and token_file.read_text().strip(), 30, "the token")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                answer = http.get("/v1/instances", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200 and answer.json()[0]["name"] == "alpha"
            assert "daemon_ready" not in d.log() and "instance_provisioned" not in d.log()


class TestClientErrors:
    def test_malformed_requests_are_4xx(self, tmp_path: Path) -> None:
        """Malformed bodies, wrong types, unknown ids and actions get 4xx answers, never 500."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            cases: list[tuple[str, str, dict[str, Any]]] = [
                ("POST", "/v1/instances", {"content": b"{not json"}),
                ("POST", "/v1/instances", {"content": b"[1, 2]"}),
                ("POST", "/v1/instances", {"json": {"name": 7}}),
                ("POST", "/v1/instances", {"json": {"name": "x", "framework": ["a"]}}),
                ("POST", "/v1/instances", {"content": b"\xff\xfe"}),
                (
                    "POST",
                    "/v1/instances",
                    {"json": {"name": "n6", "framework": "embedded", "persona": "../x"}},
                ),
                ("POST", "/v1/instances", {"content": b"x" * 70_000}),
                ("GET", "/v1/instances/..%2F..%2Fetc", {}),
                ("GET", "/v1/instances/nope", {}),
                ("POST", "/v1/instances/nope/start", {}),
                ("POST", "/v1/instances/alpha/explode", {}),
                ("POST", "/v1/instances/alpha/stop?wait=maybe", {}),
                ("DELETE", "/v1/instances/nope", {}),
                ("GET", "/v1/events/recent?limit=-1", {}),
            ]
            answers = {f"{m} {p}": _request(tmp_path, m, p, **kw).status_code for m, p, kw in cases}
            assert all(400 <= code < 500 for code in answers.values()), answers
            assert "control_request_failed" not in d.log()


ESCAPER = """
import os, sys, time
port, home = os.environ["EYRIE_PORT"], sys.argv[1]
server = (
    "import http.server, sys\\n"
    "class H(http.server.BaseHTTPRequestHandler):\\n"
    "    def do_GET(self):\\n"
    "        self.send_response(200); self.end_headers()\\n"
    "    def log_message(self, *a): pass\\n"
    "s = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H)\\n"
    "print('escaper bound', flush=True)\\n"
    "s.serve_forever()\\n"
)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/usr/bin/env", ["env", "-i", sys.executable, "-c", server, port, home])
    os._exit(0)
while True:
    time.sleep(1)
"""


def _stop_wait(home: Path, name: str) -> Exception | InstanceView:
    async def call() -> Exception | InstanceView:
        async with ControlClient(Home(home)) as client:
            try:
                return await client.stop(name, wait=True)
            except Exception as exc:
                return exc

    return anyio.run(call)


class TestEscapedProcess:
    def test_stop_reports_an_escaped_port_holder_and_start_clears_it(
        self, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """A double-forked setsid + env -i grandchild holding the port survives the stop: stop --wait says
        so (pid and port, and last_error), and the next start ends it and starts the instance again."""
        script = tmp_path_factory.mktemp("programs") / "escaper.py"  # outside the home, granted to read
        script.write_text(ESCAPER)
        decl = (
            f'command: ["{sys.executable}", "{script}", "{tmp_path}"]\nrestart: {{policy: never}}\n'
            f'sandbox: {{read: ["{script}"]}}\nready: {{kind: log, pattern: "escaper bound"}}'
        )
        with running_daemon(tmp_path, fleet_yaml(embedded("esc", decl))) as d:
            d.wait_running("esc")
            port = d.instance("esc")["port"]
            outcome = _stop_wait(tmp_path, "esc")
            assert isinstance(outcome, StopIncomplete), outcome
            assert f"port {port} is still held by pid" in str(outcome)
            assert f"port {port}" in d.instance("esc").get("last_error", "")
            holder = int(str(outcome).split("held by pid ")[1].split()[0])
            assert pid_alive(holder)
            ok_start = _act(tmp_path, "start", "esc")
            assert ok_start.status == "running", (ok_start.last_error, d.log()[-3000:])
            assert not pid_alive(holder)
            assert "port_held_by_escaped_process" in d.log()
