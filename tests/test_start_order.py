"""Every start binds its sockets, starts (or adopts) the fleet, and only then imports the HTTP stack and
serves: a request made meanwhile waits in the backlog and is answered, a start that takes long is served
before it is over, and the children of such a start are adopted by a later daemon like any others."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import pytest

from supervisor.daemon._listeners import Listeners
from supervisor.daemon.daemon import Daemon
from supervisor.engine.events import Event
from supervisor.errors import CorruptInstance
from supervisor.fleet import FleetFile
from supervisor.models import Instance, utcnow
from supervisor.paths import Home
from supervisor.store import INSTANCE_FILE, Store
from tests._cli import eyriectl
from tests._daemon import DaemonProcess, embedded, fleet_yaml, logged_order, wait_for

NEVER_READY = """\
frameworks:
  unready:
    command: [sleep, infinity]
    ready: {kind: tcp}
    live: {kind: process, seconds: 0}
    sandbox: off
"""


def _ask(path: Path, request: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(path))
    sock.sendall(request)
    return sock


def _answer(sock: socket.socket) -> bytes:
    chunks = []
    with sock:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class TestRequestsBeforeServing:
    @pytest.mark.anyio
    async def test_a_request_made_before_the_http_stack_is_up_is_answered(self, tmp_path: Path) -> None:
        """A request sent to the bound control socket before `serve` waits in the backlog; once served it
        is answered, and the event history has what was published before."""
        home = Home(tmp_path)
        daemon = Daemon(home)
        fleet = FleetFile.model_validate({"version": 1, "daemon": {"agent_api": {"enabled": False}}})
        daemon.hub.publish(Event(time=utcnow(), event="daemon", detail="before serving"))
        async with Listeners(daemon, fleet) as listeners, anyio.create_task_group() as tg:
            await listeners.bind()
            request = b"GET /v1/events/recent?limit=10 HTTP/1.1\r\nHost: eyried\r\nConnection: close\r\n\r\n"
            sock = _ask(home.socket_path, request)
            with anyio.fail_after(30):
                await listeners.serve(tg)
                answer = await anyio.to_thread.run_sync(_answer, sock)
            tg.cancel_scope.cancel()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert [e["detail"] for e in json.loads(body)] == ["before serving"]

    @pytest.mark.anyio
    async def test_a_second_serve_waits_for_the_first(self, tmp_path: Path) -> None:
        """The start's own `serve` and the one its grace started serve once between them; each returns
        when the APIs are served."""
        home = Home(tmp_path)
        daemon = Daemon(home)
        fleet = FleetFile.model_validate({"version": 1, "daemon": {"agent_api": {"enabled": False}}})
        never = anyio.Event()
        async with Listeners(daemon, fleet) as listeners, anyio.create_task_group() as tg:
            await listeners.bind()
            with anyio.fail_after(30):
                tg.start_soon(lambda: listeners.serve(tg, after=never, within=0))
                await listeners.serve(tg, after=never, within=60)
                answer = await anyio.to_thread.run_sync(
                    _answer,
                    _ask(
                        home.socket_path,
                        b"GET /v1/events/recent HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n",
                    ),
                )
            tg.cancel_scope.cancel()
        assert answer.startswith(b"HTTP/1.1 200")


class TestStartOrder:
    def test_a_first_start_spawns_its_fleet_before_it_serves(self, tmp_path: Path) -> None:
        """A first start: the fleet comes to rest before ``control_listening``; a daemon killed afterwards
        is followed by one that adopts the same processes and restarts none."""
        daemon = DaemonProcess(tmp_path)
        daemon.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta")))
        try:
            daemon.start()
            daemon.wait_serving()
            pids = daemon.wait_running("alpha", "beta")
            wait_for(lambda: "control_listening" in daemon.log(), 30, "the API served")
            assert logged_order(daemon.log(), "fleet_ready", "control_listening") == [
                "fleet_ready",
                "control_listening",
            ]
            daemon.kill()
            daemon.start()

            def successor_ready() -> bool:
                log = daemon.log()
                return log.count('"daemon_starting"') == 2 and bool(logged_order(log, "fleet_ready"))

            wait_for(successor_ready, 30, "the successor's fleet ready")
            assert daemon.wait_running("alpha", "beta") == pids
            result = eyriectl(tmp_path, "ps", "--json")
            assert result.returncode == 0, result.stderr
            rows = {row["name"]: row for row in json.loads(result.stdout)}
            assert {name: rows[name]["pid"] for name in pids} == pids
            assert all(rows[name]["status"] == "running" for name in pids)
        finally:
            daemon.close()

    def test_a_start_that_takes_long_is_served_before_it_is_over(self, tmp_path: Path) -> None:
        """An instance that never gets ready keeps the fleet from coming to rest: the API is served all
        the same, and ``eyriectl ps`` answers while it is still starting."""
        daemon = DaemonProcess(tmp_path)
        daemon.write_fleet(fleet_yaml("  - name: slow\n    framework: unready\n", defaults=NEVER_READY))
        try:
            daemon.start()
            daemon.wait_serving()
            result = eyriectl(tmp_path, "ps", "--json")
            assert result.returncode == 0, result.stderr
            assert [row["name"] for row in json.loads(result.stdout)] == ["slow"]
            assert logged_order(daemon.log(), "fleet_ready", "control_listening") == ["control_listening"]
        finally:
            daemon.close()


class TestUnchangedRuntimeWrites:
    def test_a_runtime_write_that_changes_no_byte_leaves_the_file(self, tmp_path: Path) -> None:
        """An update without fsync whose result is the file as it is replaces nothing (same inode); one
        that changes a field writes it."""
        store = Store(tmp_path)
        store.save(Instance(id="a1", name="alpha", framework="embedded"))
        path = store.dir("a1") / INSTANCE_FILE
        before = path.stat().st_ino
        store.update("a1", lambda i: None, durable=False)
        assert path.stat().st_ino == before

        def detail(i: Instance) -> None:
            i.status_detail = "adopted pid 1"

        store.update("a1", detail, durable=False)
        assert path.stat().st_ino != before
        assert store.get("a1").status_detail == "adopted pid 1"

    def test_a_durable_write_is_made_even_when_nothing_changed(self, tmp_path: Path) -> None:
        """A durable update always writes (and syncs): the bytes on disk may not have been synced yet."""
        store = Store(tmp_path)
        store.save(Instance(id="a1", name="alpha", framework="embedded"), durable=False)
        path = store.dir("a1") / INSTANCE_FILE
        before = path.stat().st_ino
        store.update("a1", lambda i: None)
        assert path.stat().st_ino != before


class TestContainmentOnRead:
    def test_plain_paths_inside_are_read_and_a_symlinked_part_is_still_resolved(self, tmp_path: Path) -> None:
        """An instance whose paths lie plainly in its directory is read; one whose config path passes a
        symlinked directory that leads out is refused, as a resolved path shows."""
        store = Store(tmp_path / "instances")
        directory = store.dir("a1")
        inst = Instance(
            id="a1",
            name="alpha",
            framework="embedded",
            config_path=str(directory / "state" / "config.toml"),
            workspace_path=str(directory / "workspace"),
        )
        store.save(inst)
        (directory / "workspace").mkdir()
        assert Store(store.root).get("a1").config_path == inst.config_path
        outside = tmp_path / "outside"
        outside.mkdir()
        (directory / "state").symlink_to(outside)
        with pytest.raises(CorruptInstance, match="outside the instance directory"):
            Store(store.root).get("a1")
