"""ControlClient: every route returns our models, errors come back as our exception classes."""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from supervisor.client import ControlClient
from supervisor.control.app import create_app
from supervisor.control.schema import AddRequest, DaemonStatus, InstanceView, ReloadResult
from supervisor.errors import (
    DaemonNotRunning,
    EyrieError,
    FleetFileError,
    HierarchyError,
    NameExists,
    NotFound,
    UnsupportedFramework,
)
from supervisor.models import HierarchyRole
from supervisor.paths import Home
from supervisor.systemd.names import unit_name
from supervisor.testing import MemoryTarget

pytestmark = pytest.mark.anyio


@pytest.fixture
def target() -> MemoryTarget:
    t = MemoryTarget("/srv/eyrie")
    t.put("alpha", port=43001)
    return t


@pytest.fixture
async def client(home: Home, target: MemoryTarget) -> AsyncIterator[ControlClient]:
    app = create_app(target)
    async with app.router.lifespan_context(app), ControlClient(home, transport=httpx.ASGITransport(app)) as c:
        yield c


class TestRoutes:
    async def test_instances(self, client: ControlClient, target: MemoryTarget) -> None:
        """list/get/add/remove round-trip through the API as InstanceView models."""
        assert [v.name for v in await client.list_instances()] == ["alpha"]
        alpha = await client.get_instance("alpha")
        assert isinstance(alpha, InstanceView) and alpha.port == 43001
        added = await client.add(AddRequest(name="beta", role=HierarchyRole.CAPTAIN, start=False))
        assert added.status == "created" and added.hierarchy_role is HierarchyRole.CAPTAIN
        await client.remove("beta", purge=True)
        assert ("delete", "beta purge=True") in target.calls

    async def test_lifecycle(self, client: ControlClient, target: MemoryTarget) -> None:
        """start/stop/restart pass wait; enable/disable return the changed view."""
        assert (await client.stop("alpha", wait=True)).status == "stopped"
        assert (await client.start("alpha")).status == "running"
        assert (await client.restart("alpha", wait=True)).status == "running"
        assert ("stop", "alpha wait=True") in target.calls and ("start", "alpha wait=False") in target.calls
        assert (await client.disable("alpha")).autostart is False
        assert (await client.enable("alpha")).autostart is True

    async def test_daemon(self, client: ControlClient, target: MemoryTarget) -> None:
        """reload, status, metrics and recent events come back typed."""
        target.reload_result = ReloadResult(ok=False, error="fleet.yaml:3: bad")
        result = await client.reload()
        assert isinstance(result, ReloadResult) and result.ok is False
        status = await client.status()
        assert isinstance(status, DaemonStatus) and status.home == "/srv/eyrie"
        assert "eyrie_instance_up" in await client.metrics()
        assert await client.recent_events() == []

    async def test_names_are_quoted(self, client: ControlClient) -> None:
        """A reference that cannot be a name or id (a slash, '..') is NotFound without reaching the API."""
        with pytest.raises(NotFound, match="names and ids use only"):
            await client.get_instance("../status")


class TestErrorTranslation:
    @pytest.mark.parametrize(
        "error",
        [
            NotFound("instance 'x' not found"),
            NameExists("taken"),
            UnsupportedFramework("nope"),
            FleetFileError("bad key", path="/h/fleet.yaml", line=2),
            HierarchyError("two commanders: a, b"),
        ],
    )
    async def test_kind_becomes_our_class(
        self, client: ControlClient, target: MemoryTarget, error: EyrieError
    ) -> None:
        """The error the daemon raised is raised again here, same class, same message."""
        target.fail_next["restart"] = error
        with pytest.raises(type(error)) as caught:
            await client.restart("alpha")
        assert str(caught.value) == str(error)

    async def test_class_that_needs_more_arguments(self, home: Home) -> None:
        """A kind whose class cannot be rebuilt from a message arrives as EyrieError with that message."""
        answer = {"error": "eyried is already running for /h (pid 12)", "kind": "DaemonRunning"}
        transport = httpx.MockTransport(lambda request: httpx.Response(409, json=answer))
        async with ControlClient(home, transport=transport) as client:
            with pytest.raises(EyrieError, match=r"already running for /h \(pid 12\)") as caught:
                await client.stop("alpha")
        assert type(caught.value) is EyrieError

    async def test_internal_error(self, client: ControlClient, target: MemoryTarget) -> None:
        """A 500 from the daemon is an EyrieError pointing at its log."""
        target.fail_next["stop"] = RuntimeError("boom")  # type: ignore[assignment]
        with pytest.raises(EyrieError, match="see its log"):
            await client.stop("alpha")


class TestNoDaemon:
    async def test_missing_socket(self, home: Home) -> None:
        """No socket file: DaemonNotRunning naming the home and how to start eyried."""
        async with ControlClient(home) as client:
            with pytest.raises(DaemonNotRunning) as caught:
                await client.list_instances()
        message = str(caught.value)
        assert str(home.root) in message and "eyried --home" in message
        assert f"systemctl --user start {shlex.quote(unit_name(home.root, os.environ))}" in message

    async def test_dead_socket(self, home: Home) -> None:
        """A socket file nobody listens on (a crashed daemon) is DaemonNotRunning too."""
        home.ensure_run_dir()
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(home.socket_path))
        dead.close()
        async with ControlClient(home) as client:
            with pytest.raises(DaemonNotRunning):
                await client.status()

    async def test_connection_closed_without_answer(self, home: Home) -> None:
        """A server hanging up at once (as for a foreign uid) gives a clear EyrieError, not an httpx one."""
        home.ensure_run_dir()

        async def hang_up(stream: SocketStream) -> None:
            await stream.aclose()

        async with (
            await anyio.create_unix_listener(home.socket_path) as listener,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(listener.serve, hang_up)
            async with ControlClient(home) as client:
                with pytest.raises(EyrieError, match="without answering") as caught:
                    await client.status()
            assert not isinstance(caught.value, DaemonNotRunning)
            tg.cancel_scope.cancel()
