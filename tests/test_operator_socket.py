"""The operator API out of an agent's reach: the abstract socket beside the socket file, no_new_privs peers
refused on the file, Landlock-scoped peers refused on the abstract one, other uids on both; eyriectl dials
the abstract socket and trusts it only when eyried is the listener."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from supervisor.client import ControlClient
from supervisor.control._access import AGENT_REFUSAL
from supervisor.paths import Home
from supervisor.testing import MemoryTarget, capture_logs
from tests._cli import EYRIECTL
from tests._landlock import SCOPE_ABI, landlock_abi, scope_abstract_unix_sockets, set_no_new_privs
from tests._operator import SQUATTER, operator_api, shown

pytestmark = pytest.mark.anyio

SETPRIV = shutil.which("setpriv")
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None

# Standard library only (it also runs as nobody). argv: address ("@name" for an abstract one), then
# "escape" to connect from a grandchild in a new session with an empty environment.
PEER = r"""
import os, socket, sys
target, how = sys.argv[1], sys.argv[2]
session = os.getsid(0)
if how == "escape":
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.environ.clear()
with open("/proc/self/status") as status:
    nnp = next(line.split()[1] for line in status if line.startswith("NoNewPrivs:"))
print(f"nnp={nnp} own_session={os.getsid(0) != session} env={len(os.environ)} pid={os.getpid()}")
address = "\0" + target[1:] if target.startswith("@") else target
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(address)
except OSError as exc:
    print("connect-failed", exc.errno)
    sys.exit(0)
data = b""
try:
    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: eyried\r\nConnection: close\r\n\r\n")
    while chunk := s.recv(65536):
        data += chunk
except OSError as exc:
    print("reset", exc.errno)
print("answer:" + data.decode(errors="replace"))
"""


@pytest.fixture
def target(home: Home) -> MemoryTarget:
    t = MemoryTarget(str(home.root))
    t.put("alpha")
    return t


@pytest.fixture
def open_home() -> Iterator[Home]:
    """A home under /tmp that other users may traverse, so only the daemon's own checks keep them out."""
    root = tempfile.mkdtemp(prefix="eyr-")
    os.chmod(root, 0o755)
    try:
        yield Home(Home.resolve(root).root)
    finally:
        shutil.rmtree(root)


async def _peer(
    address: str,
    *,
    how: str = "direct",
    preexec: Callable[[], None] | None = None,
    prefix: Sequence[str] = (),
    python: str = sys.executable,
) -> str:
    """What a peer process printed after asking for ``/v1/status`` at ``address``.

    Run on a worker thread: the server answering it lives on this test's event loop.
    """
    run = functools.partial(
        subprocess.run,
        [*prefix, python, "-c", PEER, address, how],
        capture_output=True,
        text=True,
        timeout=20,
        cwd="/",
        stdin=subprocess.DEVNULL,
        preexec_fn=preexec,
        check=True,
    )
    with anyio.fail_after(25):
        result = await anyio.to_thread.run_sync(run)
    return result.stdout


def _refusals(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "control_connection_refused"]


needs_scope = pytest.mark.skipif(
    landlock_abi() < SCOPE_ABI, reason=f"Landlock scopes need ABI {SCOPE_ABI} (Linux 6.12)"
)


class TestSocketFile:
    async def test_owner_is_served(self, home: Home, target: MemoryTarget) -> None:
        """A process of the owner without no_new_privs gets its answer on the socket file."""
        async with operator_api(target, home):
            output = await _peer(str(home.socket_path))
        assert "nnp=0" in output and "answer:HTTP/1.1 200" in output

    async def test_no_new_privs_peer_is_answered_403(self, home: Home, target: MemoryTarget) -> None:
        """A peer with no_new_privs set, as every confined agent has it, is refused with 403, a message
        pointing at the agent API, and a log line naming its pid and uid."""
        with capture_logs() as logs:
            async with operator_api(target, home):
                output = await _peer(str(home.socket_path), preexec=set_no_new_privs)
        assert "nnp=1" in output
        assert "answer:HTTP/1.1 403" in output
        assert "agent API" in output and "abstract socket" in output
        pid = int(output.split("pid=")[1].split()[0])
        [refusal] = _refusals(logs)
        assert refusal["reason"] == "no_new_privs"
        assert refusal["peer_pid"] == pid and refusal["peer_uid"] == os.getuid()
        assert "agent API" in AGENT_REFUSAL

    async def test_double_fork_setsid_and_cleared_environment_do_not_shed_it(
        self, home: Home, target: MemoryTarget
    ) -> None:
        """A grandchild in a session of its own with an empty environment still carries no_new_privs, and
        is refused just the same."""
        async with operator_api(target, home):
            output = await _peer(str(home.socket_path), how="escape", preexec=set_no_new_privs)
        assert "nnp=1 own_session=True env=0" in output
        assert "answer:HTTP/1.1 403" in output


class TestAbstractSocket:
    async def test_named_after_the_home(self, home: Home, tmp_path: Path) -> None:
        """The name holds the uid and a hash of the home's real path: a symlink to the home finds the
        same name, another home another one."""
        link = tmp_path / "link"
        link.symlink_to(home.root)
        other = Home(home.root.parent / "other")
        assert home.operator_socket.startswith(f"\0eyrie/{os.getuid()}/")
        assert Home(link).operator_socket == home.operator_socket
        assert other.operator_socket != home.operator_socket

    async def test_no_new_privs_peer_is_served(self, home: Home, target: MemoryTarget) -> None:
        """An operator's program running with no_new_privs (a NoNewPrivileges=yes unit) but not confined
        reaches the API on the abstract socket."""
        async with operator_api(target, home) as listening:
            assert listening.abstract_socket == home.operator_socket
            output = await _peer(shown(home.operator_socket), preexec=set_no_new_privs)
        assert "nnp=1" in output and "answer:HTTP/1.1 200" in output

    @needs_scope
    async def test_landlock_scoped_peer_cannot_connect(self, home: Home, target: MemoryTarget) -> None:
        """A process in a Landlock domain that scopes abstract sockets (as every confined agent's does)
        cannot connect to it (EPERM), nor after a double fork and setsid; on the socket file it gets 403."""
        async with operator_api(target, home):
            direct = await _peer(shown(home.operator_socket), preexec=scope_abstract_unix_sockets)
            escaped = await _peer(
                shown(home.operator_socket), how="escape", preexec=scope_abstract_unix_sockets
            )
            on_file = await _peer(str(home.socket_path), preexec=scope_abstract_unix_sockets)
        assert "connect-failed 1" in direct  # EPERM
        assert "own_session=True" in escaped and "connect-failed 1" in escaped
        assert "answer:HTTP/1.1 403" in on_file

    async def test_name_taken_serves_the_file_alone(self, home: Home, target: MemoryTarget) -> None:
        """When another process holds the abstract name eyried still serves its socket file, and says
        why the other is missing."""
        squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        squatter.bind(home.operator_socket)
        try:
            with capture_logs() as logs:
                async with operator_api(target, home) as listening:
                    assert listening.abstract_socket is None
                    output = await _peer(str(home.socket_path))
        finally:
            squatter.close()
        assert "answer:HTTP/1.1 200" in output
        assert any(e["event"] == "operator_socket_taken" for e in logs)


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another uid needs root")
@pytest.mark.skipif(SETPRIV is None or SYSTEM_PYTHON is None, reason="needs setpriv and /usr/bin/python3")
class TestOtherUser:
    async def test_refused_on_both_sockets(self, open_home: Home, target: MemoryTarget) -> None:
        """Another uid gets no answer on the abstract socket (no file mode guards it, the uid check
        does), nor on the socket file even with its modes loosened."""
        assert SETPRIV is not None and SYSTEM_PYTHON is not None
        nobody = (SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups")
        with capture_logs() as logs:
            async with operator_api(target, open_home):
                open_home.run_dir.chmod(0o755)
                open_home.socket_path.chmod(0o666)
                on_abstract = await _peer(
                    shown(open_home.operator_socket), prefix=nobody, python=SYSTEM_PYTHON
                )
                on_file = await _peer(str(open_home.socket_path), prefix=nobody, python=SYSTEM_PYTHON)
        for output in (on_abstract, on_file):
            assert "connect-failed" not in output and "HTTP/1.1" not in output
        assert [e["peer_uid"] for e in _refusals(logs)] == [65534, 65534]


class TestClient:
    async def test_dials_the_abstract_socket(self, home: Home, target: MemoryTarget) -> None:
        """The client goes to the abstract socket when eyried listens there."""
        async with operator_api(target, home), ControlClient(home) as client:
            assert [v.name for v in await client.list_instances()] == ["alpha"]
            assert client.socket_used == shown(home.operator_socket)

    async def test_falls_back_to_the_file_without_a_pid_file(self, home: Home, target: MemoryTarget) -> None:
        """With no pid file to tell who eyried is, the abstract listener is not trusted: the file is used."""
        async with operator_api(target, home), ControlClient(home) as client:
            home.pid_file.unlink()
            await client.status()
            assert client.socket_used == str(home.socket_path)

    async def test_never_talks_to_a_squatter(self, home: Home, target: MemoryTarget) -> None:
        """A process that took the abstract name (as an agent could while eyried is away) is sent nothing:
        the client sees it is not the pid in the pid file and uses the socket file."""
        squatter = await anyio.open_process(
            [sys.executable, "-c", SQUATTER, shown(home.operator_socket)], stdin=subprocess.DEVNULL
        )
        try:
            assert squatter.stdout is not None
            with anyio.fail_after(10):
                assert (await squatter.stdout.receive()).startswith(b"listening")
            async with operator_api(target, home), ControlClient(home) as client:
                await client.status()
                assert client.socket_used == str(home.socket_path)
            with anyio.fail_after(10):
                assert (await squatter.stdout.receive()).strip() == b"received 0"
        finally:
            squatter.kill()
            await squatter.wait()
            await squatter.aclose()


class TestEyriectl:
    async def test_status_works_with_and_without_no_new_privs(self, home: Home, target: MemoryTarget) -> None:
        """eyriectl answers from a plain shell and from inside a NoNewPrivileges=yes unit alike."""
        env = {**os.environ, "EYRIE_HOME": str(home.root)}
        command = functools.partial(
            subprocess.run,
            [str(EYRIECTL), "--home", str(home.root), "status"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        async with operator_api(target, home):
            with anyio.fail_after(65):
                plain = await anyio.to_thread.run_sync(command)
                confined = await anyio.to_thread.run_sync(
                    functools.partial(command, preexec_fn=set_no_new_privs)
                )
        assert plain.returncode == 0, plain.stderr
        assert confined.returncode == 0, confined.stderr

    async def test_refusal_is_explained(self, home: Home, target: MemoryTarget) -> None:
        """With no_new_privs and no abstract socket to use, eyriectl fails with the daemon's reason."""
        command = functools.partial(
            subprocess.run,
            [str(EYRIECTL), "--home", str(home.root), "status"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            preexec_fn=set_no_new_privs,
        )
        async with operator_api(target, home):
            home.pid_file.unlink()
            with anyio.fail_after(65):
                refused = await anyio.to_thread.run_sync(command)
        assert refused.returncode != 0
        assert "agent API" in refused.stderr and "abstract socket" in refused.stderr
