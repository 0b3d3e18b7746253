"""eyriectl's quick synchronous reader keeps the operator socket's rules exactly as `ControlClient` does: the
abstract socket only when eyried is its listener, the file otherwise, nothing ever sent to a squatter, and
the same errors (no daemon, an error answer) as the same classes with the same messages."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from typing import Any

import anyio
import pytest

from supervisor.cli._quick_client import QuickClient
from supervisor.client import ControlClient
from supervisor.errors import DaemonNotRunning, EyrieError, NotFound
from supervisor.paths import Home
from supervisor.testing import MemoryTarget
from tests._operator import SQUATTER, operator_api, shown

pytestmark = pytest.mark.anyio


@pytest.fixture
def target(home: Home) -> MemoryTarget:
    t = MemoryTarget(str(home.root))
    t.put("alpha")
    return t


def _get(home: Home, path: str) -> tuple[Any, str | None]:
    with QuickClient(home) as client:
        return client.get(path), client.socket_used


async def quick(home: Home, path: str) -> tuple[Any, str | None]:
    """``GET path`` through the quick client on a worker thread (the server lives on this loop)."""
    with anyio.fail_after(20):
        return await anyio.to_thread.run_sync(_get, home, path)


class TestDialling:
    async def test_dials_the_abstract_socket(self, home: Home, target: MemoryTarget) -> None:
        """With eyried listening there, the abstract socket is the one used."""
        async with operator_api(target, home):
            rows, used = await quick(home, "/v1/instances")
        assert [row["name"] for row in rows] == ["alpha"] and used == shown(home.operator_socket)

    async def test_falls_back_to_the_file_without_a_pid_file(self, home: Home, target: MemoryTarget) -> None:
        """With no pid file to tell who eyried is, the abstract listener is not trusted: the file is used."""
        async with operator_api(target, home):
            home.pid_file.unlink()
            status, used = await quick(home, "/v1/status")
        assert status["home"] == str(home.root) and used == str(home.socket_path)

    async def test_never_talks_to_a_squatter(self, home: Home, target: MemoryTarget) -> None:
        """A process holding the abstract name is not the pid in the pid file: it is sent nothing."""
        squatter = await anyio.open_process(
            [sys.executable, "-c", SQUATTER, shown(home.operator_socket)], stdin=subprocess.DEVNULL
        )
        try:
            assert squatter.stdout is not None
            with anyio.fail_after(10):
                assert (await squatter.stdout.receive()).startswith(b"listening")
            async with operator_api(target, home):
                _, used = await quick(home, "/v1/status")
            assert used == str(home.socket_path)
            with anyio.fail_after(10):
                assert (await squatter.stdout.receive()).strip() == b"received 0"
        finally:
            squatter.kill()
            await squatter.wait()
            await squatter.aclose()


class TestErrors:
    async def test_no_daemon_is_the_same_error(self, home: Home) -> None:
        """Without eyried both clients raise DaemonNotRunning with the same message."""
        with pytest.raises(DaemonNotRunning) as quick_error:
            await quick(home, "/v1/status")
        with pytest.raises(DaemonNotRunning) as async_error:
            async with ControlClient(home) as client:
                await client.status()
        assert str(quick_error.value) == str(async_error.value)

    async def test_an_error_answer_is_the_daemons_exception(self, home: Home, target: MemoryTarget) -> None:
        """An error answer becomes the class the daemon raised, message and all, as ControlClient's does."""
        async with operator_api(target, home):
            with pytest.raises(NotFound) as quick_error:
                await quick(home, "/v1/instances/nosuch")
            with pytest.raises(NotFound) as async_error:
                async with ControlClient(home) as client:
                    await client.get_instance("nosuch")
        assert str(quick_error.value) == str(async_error.value)

    async def test_a_listener_that_is_not_http_is_an_eyrie_error(self, home: Home) -> None:
        """A socket file whose listener closes without answering is an EyrieError naming the socket."""
        home.ensure_run_dir()
        with contextlib.closing(_listening_unix(str(home.socket_path))) as listener:
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, _accept_and_close, listener)
                with pytest.raises(EyrieError, match="closed the connection"):
                    await quick(home, "/v1/status")


def _listening_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    return sock


def _accept_and_close(listener: socket.socket) -> None:
    listener.settimeout(20)
    conn, _ = listener.accept()
    conn.recv(65536)
    conn.close()
