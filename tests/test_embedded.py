"""The embedded gateway as a real process: its ready line, HTTP answers, signals, and refusals."""

from __future__ import annotations

import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import Process

MODULE = "supervisor.frameworks.embedded"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(tmp_path: Path, **overrides: Any) -> Path:
    config = {"name": "ada", "port": _free_port(), "host": "127.0.0.1", "token": "t" * 43, **overrides}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


async def _read_line(process: Process) -> bytes:
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        line += await process.stdout.receive()
    return line


async def _read_all(stream: Any) -> bytes:
    out = b""
    with anyio.fail_after(10):
        async for chunk in stream:
            out += chunk
    return out


async def _run_to_exit(*args: str) -> tuple[int, str]:
    """Run the gateway expecting it to exit by itself; return its exit code and stderr."""
    result = await anyio.run_process([sys.executable, "-m", MODULE, *args], check=False)
    return result.returncode, result.stderr.decode()


class _Running:
    """A gateway process, its port and an HTTP client pointed at it."""

    def __init__(self, process: Process, port: int, client: httpx.AsyncClient) -> None:
        self.process = process
        self.port = port
        self.client = client


@asynccontextmanager
async def _gateway(tmp_path: Path, **overrides: Any) -> AsyncIterator[_Running]:
    """A running gateway, ended (and reaped) however the test leaves."""
    config = _write_config(tmp_path, **overrides)
    port = json.loads(config.read_text())["port"]
    host = "[::1]" if overrides.get("host") == "::1" else "127.0.0.1"
    process = await anyio.open_process([sys.executable, "-m", MODULE, "--config", str(config)])
    try:
        with anyio.fail_after(10):
            assert await _read_line(process) == f"EMBEDDED_READY port={port}\n".encode()
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            yield _Running(process, port, client)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.fail_after(10):
            await process.wait()
        await process.aclose()


class TestServing:
    @pytest.mark.anyio
    async def test_health(self, tmp_path: Path) -> None:
        """GET /health answers 200 JSON with status, the process's pid, uptime and the instance name."""
        async with _gateway(tmp_path) as gw:
            response = await gw.client.get("/health")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["status"] == "ok"
        assert body["pid"] == gw.process.pid
        assert body["name"] == "ada"
        assert body["uptime_seconds"] >= 0

    @pytest.mark.anyio
    async def test_ready_and_not_found(self, tmp_path: Path) -> None:
        """GET /ready is 200 once serving; any other path is 404; a query string is ignored."""
        async with _gateway(tmp_path) as gw:
            assert (await gw.client.get("/ready")).status_code == 200
            assert (await gw.client.get("/health?verbose=1")).status_code == 200
            missing = await gw.client.get("/v1/chat")
            assert missing.status_code == 404
            assert missing.json()["path"] == "/v1/chat"

    @pytest.mark.anyio
    async def test_methods(self, tmp_path: Path) -> None:
        """HEAD gets headers only; other methods get 405 with an Allow header."""
        async with _gateway(tmp_path) as gw:
            head = await gw.client.head("/health")
            assert head.status_code == 200
            assert head.content == b""
            assert int(head.headers["content-length"]) > 0
            post = await gw.client.post("/health", content=b"{}")
            assert post.status_code == 405
            assert post.headers["allow"] == "GET, HEAD"

    @pytest.mark.anyio
    async def test_malformed_and_oversized_requests(self, tmp_path: Path) -> None:
        """A garbage request line gets 400 and endless headers get 431; the gateway keeps serving."""
        async with _gateway(tmp_path) as gw:
            async with await anyio.connect_tcp("127.0.0.1", gw.port) as stream:
                await stream.send(b"HELLO\r\n\r\n")
                assert (await _read_all(stream)).startswith(b"HTTP/1.1 400 ")
            async with await anyio.connect_tcp("127.0.0.1", gw.port) as stream:
                await stream.send(b"GET /health HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000)
                assert (await _read_all(stream)).startswith(b"HTTP/1.1 431 ")
            assert (await gw.client.get("/health")).status_code == 200

    @pytest.mark.anyio
    async def test_silent_client_does_not_block_others(self, tmp_path: Path) -> None:
        """A client that connects and sends nothing does not hold up other requests."""
        async with _gateway(tmp_path) as gw, await anyio.connect_tcp("127.0.0.1", gw.port):
            with anyio.fail_after(5):
                assert (await gw.client.get("/health")).status_code == 200

    @pytest.mark.anyio
    async def test_concurrent_clients(self, tmp_path: Path) -> None:
        """Many requests at once are all answered."""
        statuses: list[int] = []
        async with _gateway(tmp_path) as gw:

            async def one() -> None:
                statuses.append((await gw.client.get("/health")).status_code)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for _ in range(50):
                        tg.start_soon(one)
        assert statuses == [200] * 50

    @pytest.mark.anyio
    async def test_ipv6_loopback(self, tmp_path: Path) -> None:
        """The gateway can listen on the IPv6 loopback."""
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
                port = int(s.getsockname()[1])
        except OSError:
            pytest.skip("this machine has no IPv6 loopback")
        async with _gateway(tmp_path, host="::1", port=port) as gw:
            assert (await gw.client.get("/health")).status_code == 200


class TestSignals:
    @pytest.mark.anyio
    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    async def test_stop_signal_exits_zero(self, tmp_path: Path, signum: signal.Signals) -> None:
        """SIGTERM and SIGINT end the gateway promptly with exit code 0 and free its port."""
        async with _gateway(tmp_path) as gw:
            gw.process.send_signal(signum)
            with anyio.fail_after(5):
                assert await gw.process.wait() == 0
            assert gw.process.stderr is not None
            assert signum.name in (await _read_all(gw.process.stderr)).decode()
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", gw.port))

    @pytest.mark.anyio
    async def test_signal_while_client_connected(self, tmp_path: Path) -> None:
        """An open client connection does not delay the exit on SIGTERM."""
        async with _gateway(tmp_path) as gw, await anyio.connect_tcp("127.0.0.1", gw.port):
            gw.process.terminate()
            with anyio.fail_after(5):
                assert await gw.process.wait() == 0


class TestRefusals:
    @pytest.mark.anyio
    async def test_missing_config(self, tmp_path: Path) -> None:
        """A config file that does not exist: exit 2, and the message names it."""
        missing = tmp_path / "nope.json"
        code, err = await _run_to_exit("--config", str(missing))
        assert code == 2
        assert f"{missing}: config file not found" in err

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("{broken", "not valid JSON"),
            ("[1]", "expected a JSON object"),
            ('{"name": "x"}', "port must be an integer"),
            ('{"port": "43000"}', "port must be an integer"),
            ('{"port": true}', "port must be an integer"),
            ('{"port": 70000}', "port must be an integer"),
            ('{"port": 43000, "host": "0.0.0.0"}', "not a loopback address"),
            ('{"port": 43000, "host": "example.com"}', "not a loopback address"),
            ('{"port": 43000, "name": 7}', "name must be a string"),
        ],
    )
    async def test_bad_config(self, tmp_path: Path, content: str, message: str) -> None:
        """An invalid config: exit 2 with a message naming the file and the problem."""
        path = tmp_path / "config.json"
        path.write_text(content)
        code, err = await _run_to_exit("--config", str(path))
        assert code == 2
        assert str(path) in err
        assert message in err

    @pytest.mark.anyio
    @pytest.mark.parametrize("args", [[], ["--config"], ["--port", "1"], ["--config="]])
    async def test_usage(self, args: list[str]) -> None:
        """Anything but --config FILE is a usage error with exit 2."""
        code, err = await _run_to_exit(*args)
        assert code == 2
        assert "usage:" in err

    @pytest.mark.anyio
    async def test_config_equals_form(self, tmp_path: Path) -> None:
        """--config=FILE is read as the config file too (here one with a bad port, so it exits)."""
        config = _write_config(tmp_path, port=70000)
        code, err = await _run_to_exit(f"--config={config}")
        assert code == 2
        assert f"{config}: port must be an integer" in err

    @pytest.mark.anyio
    async def test_port_in_use(self, tmp_path: Path) -> None:
        """A port another process listens on: exit 2 naming the address."""
        with socket.socket() as holder:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = int(holder.getsockname()[1])
            code, err = await _run_to_exit("--config", str(_write_config(tmp_path, port=port)))
        assert code == 2
        assert f"cannot listen on 127.0.0.1:{port}" in err
        assert "in use" in err

    @pytest.mark.anyio
    async def test_two_gateways_one_port(self, tmp_path: Path) -> None:
        """A second gateway on a running one's port is refused; the first keeps serving."""
        async with _gateway(tmp_path) as gw:
            code, _ = await _run_to_exit("--config", str(tmp_path / "config.json"))
            assert code == 2
            assert (await gw.client.get("/health")).status_code == 200

    @pytest.mark.anyio
    async def test_help(self) -> None:
        """--help prints the usage and exits 0."""
        result = await anyio.run_process([sys.executable, "-m", MODULE, "--help"])
        assert b"usage:" in result.stdout
