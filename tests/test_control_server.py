"""The control server on a real Unix socket and on TCP: modes, peer uid, token, streams, shutdown."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest

from supervisor.client import ControlClient
from supervisor.control.app import create_app
from supervisor.control.schema import Event
from supervisor.control.server import Listening, TcpSettings, serve
from supervisor.errors import EyrieError
from supervisor.paths import Home
from supervisor.testing import MemoryTarget

pytestmark = pytest.mark.anyio

NOBODY = 65534
SETPRIV = shutil.which("setpriv")
# The client runs as nobody, so it must be an interpreter nobody can execute; only the stdlib is used.
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None

RAW_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect-failed", exc.errno)
    sys.exit(0)
data = b""
try:
    s.sendall(b"GET /v1/status HTTP/1.1\\r\\nHost: eyried\\r\\nConnection: close\\r\\n\\r\\n")
    while chunk := s.recv(65536):
        data += chunk
except OSError as exc:
    print("reset", exc.errno)
print("answer:" + data[:15].decode(errors="replace"))
"""


@pytest.fixture
def target(home: Home) -> MemoryTarget:
    t = MemoryTarget(str(home.root))
    t.put("alpha")
    return t


@contextlib.asynccontextmanager
async def running(
    target: MemoryTarget, home: Home, tcp: TcpSettings | None = None, *, header_timeout: float = 10.0
) -> AsyncIterator[Listening]:
    app = create_app(target, keepalive=0.05)
    async with anyio.create_task_group() as tg:
        listening: Listening = await tg.start(
            functools.partial(
                serve, app, socket_path=home.socket_path, tcp=tcp, header_timeout=header_timeout
            )
        )
        yield listening
        tg.cancel_scope.cancel()


@pytest.fixture
def open_home() -> Iterator[Home]:
    """A home under /tmp that other users may traverse, so only the daemon's own checks keep them out."""
    root = Path(tempfile.mkdtemp(prefix="eyr-"))
    root.chmod(0o755)
    try:
        yield Home(root)
    finally:
        shutil.rmtree(root)


async def _raw_client(socket_path: Path, *, as_nobody: bool) -> str:
    assert SYSTEM_PYTHON is not None and SETPRIV is not None
    prefix = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if as_nobody else []
    with anyio.fail_after(10):
        result = await anyio.run_process(
            [*prefix, SYSTEM_PYTHON, "-c", RAW_CLIENT, str(socket_path)], check=True, cwd="/"
        )
    return result.stdout.decode()


class TestUnixSocket:
    async def test_serves_the_api(self, home: Home, target: MemoryTarget) -> None:
        """The client lists instances over the real socket."""
        async with running(target, home), ControlClient(home) as client:
            assert [v.name for v in await client.list_instances()] == ["alpha"]

    async def test_socket_and_dir_are_owner_only(self, home: Home, target: MemoryTarget) -> None:
        """The socket is 0600 in a 0700 directory, tightened even if the directory existed looser."""
        home.run_dir.mkdir(mode=0o755)
        home.run_dir.chmod(0o755)
        async with running(target, home) as listening:
            assert listening.socket_path == home.socket_path
            mode = home.socket_path.stat().st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
            assert stat.S_IMODE(home.run_dir.stat().st_mode) == 0o700
            assert [p.name for p in home.run_dir.iterdir()] == ["eyried.sock"]

    async def test_socket_removed_on_shutdown(self, home: Home, target: MemoryTarget) -> None:
        """A clean shutdown removes the socket file."""
        async with running(target, home):
            assert home.socket_path.exists()
        assert not home.socket_path.exists()

    async def test_stale_socket_is_replaced(self, home: Home, target: MemoryTarget) -> None:
        """A socket file left by a dead daemon is replaced, not an obstacle."""
        home.ensure_run_dir()
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(home.socket_path))
        stale.close()
        async with running(target, home), ControlClient(home) as client:
            assert (await client.status()).home == str(home.root)

    async def test_live_socket_is_not_stolen(self, home: Home, target: MemoryTarget) -> None:
        """A second server on a socket that answers is refused."""
        async with running(target, home):
            with pytest.raises(EyrieError, match="already listening"):
                await serve(create_app(target), socket_path=home.socket_path)

    async def test_non_socket_file_is_refused(self, home: Home, target: MemoryTarget) -> None:
        """A regular file where the socket goes is left alone and named in the error."""
        home.ensure_run_dir()
        home.socket_path.write_text("mine")
        with pytest.raises(EyrieError, match="is not a socket"):
            await serve(create_app(target), socket_path=home.socket_path)
        assert home.socket_path.read_text() == "mine"

    async def test_too_long_path_is_refused(self, tmp_path: Path, target: MemoryTarget) -> None:
        """A socket path over the kernel's limit gets an error that says so."""
        deep = Home(tmp_path / ("d" * 120))
        with pytest.raises(EyrieError, match="shorter home"):
            await serve(create_app(target), socket_path=deep.socket_path)

    async def test_event_stream_over_socket(self, home: Home, target: MemoryTarget) -> None:
        """Events published by the target reach a client reading the stream over the socket."""
        async with running(target, home), ControlClient(home) as client, client.events() as events:
            with anyio.fail_after(5):
                while True:
                    if target.subscriber_count >= 2:
                        break
                    await anyio.sleep(0.01)
            target.publish(
                Event(time=datetime.now(UTC), event="transition", instance="alpha", to_status="error")
            )
            with anyio.fail_after(5):
                event = await anext(aiter(events))
            assert event.instance == "alpha" and event.to_status == "error"

    async def test_shutdown_ends_open_streams(self, home: Home, target: MemoryTarget) -> None:
        """Stopping the server while a client that does not reconnect follows events ends that stream
        promptly, without an error."""
        seen: list[Event] = []
        ended = anyio.Event()

        async def follow(client: ControlClient) -> None:
            async with client.events(reconnect_for=0) as events:
                seen.extend([e async for e in events])
            ended.set()

        with anyio.fail_after(5):
            async with ControlClient(home) as client, anyio.create_task_group() as tg:
                async with running(target, home):
                    tg.start_soon(follow, client)
                    while True:
                        if target.subscriber_count >= 2:
                            break
                        await anyio.sleep(0.01)
                await ended.wait()
        assert seen == [] and target.subscriber_count == 0


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another uid needs root")
@pytest.mark.skipif(SETPRIV is None or SYSTEM_PYTHON is None, reason="needs setpriv and /usr/bin/python3")
class TestPeerCredentials:
    async def test_owner_is_served(self, open_home: Home, target: MemoryTarget) -> None:
        """A connection from the daemon's own uid gets an answer."""
        async with running(target, open_home):
            assert "answer:HTTP/1.1 200" in await _raw_client(open_home.socket_path, as_nobody=False)

    async def test_other_uid_blocked_by_mode(self, open_home: Home, target: MemoryTarget) -> None:
        """With the default modes another user cannot even connect."""
        async with running(target, open_home):
            output = await _raw_client(open_home.socket_path, as_nobody=True)
        assert output.startswith("connect-failed 13")

    async def test_other_uid_refused_even_when_modes_are_loosened(
        self, open_home: Home, target: MemoryTarget
    ) -> None:
        """With the socket 0666 and its directory 0755, another uid connects but gets no answer."""
        async with running(target, open_home):
            open_home.run_dir.chmod(0o755)
            open_home.socket_path.chmod(0o666)
            output = await _raw_client(open_home.socket_path, as_nobody=True)
            assert "HTTP/1.1" not in output and "connect-failed" not in output
            assert "answer:HTTP/1.1 200" in await _raw_client(open_home.socket_path, as_nobody=False)


class TestTcpListener:
    async def test_token_required(self, home: Home, target: MemoryTarget, tmp_path: Path) -> None:
        """Without the bearer token (or with a wrong one) TCP answers 401; with it, the API."""
        token_file = tmp_path / "token"
        token_file.write_text("right-token\n")
        token_file.chmod(0o600)
        async with running(target, home, TcpSettings(port=0, token_file=token_file)) as listening:
            assert listening.tcp_address is not None
            host, port = listening.tcp_address
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
                bare = await http.get("/v1/instances")
                assert bare.status_code == 401 and bare.json()["kind"] == "Unauthorized"
                assert bare.headers["www-authenticate"] == "Bearer"
                wrong = await http.get("/v1/instances", headers={"Authorization": "Bearer wrong-token"})
                assert wrong.status_code == 401 and "right-token" not in wrong.text
                ok = await http.get("/v1/instances", headers={"Authorization": "Bearer right-token"})
                assert ok.status_code == 200 and ok.json()[0]["name"] == "alpha"

    async def test_off_by_default(self, home: Home, target: MemoryTarget) -> None:
        """Without TcpSettings nothing listens on TCP."""
        async with running(target, home) as listening:
            assert listening.tcp_address is None

    async def test_missing_token_file_is_created_owner_only(
        self, home: Home, target: MemoryTarget, tmp_path: Path
    ) -> None:
        """A missing token file is created 0600 with a random token that then works."""
        token_file = tmp_path / "secrets" / "control-token"
        async with running(target, home, TcpSettings(port=0, token_file=token_file)) as listening:
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            token = token_file.read_text().strip()
            assert len(token) >= 32
            assert listening.tcp_address is not None
            host, port = listening.tcp_address
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
                ok = await http.get("/v1/status", headers={"Authorization": f"Bearer {token}"})
                assert ok.status_code == 200

    async def test_token_file_readable_by_others_is_refused(
        self, home: Home, target: MemoryTarget, tmp_path: Path
    ) -> None:
        """A token file other users can read stops the server from starting, with the fix in the message."""
        token_file = tmp_path / "token"
        token_file.write_text("t0ken")
        token_file.chmod(0o644)
        with pytest.raises(EyrieError, match="chmod 600"):
            await serve(create_app(target), socket_path=home.socket_path, tcp=TcpSettings(0, token_file))
        assert not home.socket_path.exists()

    def test_non_loopback_host_is_refused(self, tmp_path: Path) -> None:
        """The TCP listener only binds loopback addresses."""
        with pytest.raises(EyrieError, match="not a loopback"):
            TcpSettings(port=0, token_file=tmp_path / "t", host="0.0.0.0")


async def _closed_by_server(stream: anyio.abc.ByteStream, first: bytes) -> bytes:
    """Send ``first``, then read until the server closes the connection; what it sent."""
    if first:
        await stream.send(first)
    received = b""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            received += await stream.receive()
    return received


class TestHeaderTimeout:
    @pytest.mark.parametrize(
        "first", [b"", b"GET /v1/status HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "slow"]
    )
    async def test_tcp_client_that_sends_no_whole_head_is_closed(
        self, home: Home, target: MemoryTarget, tmp_path: Path, first: bytes
    ) -> None:
        """A TCP client that sends nothing, or half a request head, is disconnected after the deadline."""
        token_file = tmp_path / "token"
        token_file.write_text("t\n")
        token_file.chmod(0o600)
        tcp = TcpSettings(port=0, token_file=token_file)
        async with running(target, home, tcp, header_timeout=0.3) as listening:
            assert listening.tcp_address is not None
            host, port = listening.tcp_address
            with anyio.fail_after(5):
                async with await anyio.connect_tcp(host, port) as stream:
                    assert await _closed_by_server(stream, first) == b""

    async def test_unix_client_that_sends_nothing_is_closed(self, home: Home, target: MemoryTarget) -> None:
        """The same deadline holds on the Unix socket, and a prompt request is still answered."""
        async with running(target, home, header_timeout=0.3):
            with anyio.fail_after(5):
                async with await anyio.connect_unix(home.socket_path) as stream:
                    assert await _closed_by_server(stream, b"") == b""
                async with await anyio.connect_unix(home.socket_path) as stream:
                    request = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    assert (await _closed_by_server(stream, request)).startswith(b"HTTP/1.1 200")
