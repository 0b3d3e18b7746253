"""The hostile agent's pieces against real files, processes and sockets set up here, unconfined: attempts
succeed where permissions allow, and what permissions (another uid, no capabilities, no_new_privs, a
Landlock scope) refuse is recorded as refused, never as a plain failure."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import httpx
import pytest

from supervisor.control.app import create_app
from supervisor.control.server import serve
from supervisor.paths import Home
from supervisor.testing import MemoryTarget, free_port, hostile, wait_for
from supervisor.testing._attempts import (
    Outcome,
    api_call,
    bind_port,
    escaped,
    own_file,
    read_environ,
    read_file,
    send_signal,
    unix_get,
    write_file,
)
from tests._landlock import SCOPE_ABI, landlock_abi, scope_abstract_unix_sockets

TOKEN = "agent-token-1"
SETPRIV = shutil.which("setpriv")
NOBODY = 65534


@contextlib.contextmanager
def agent_api() -> Iterator[str]:
    """A stand-in for the agent API: ``POST /v1/talons`` is 201 with the token, 401 without; ``/limit``
    is 429."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status = 401
            else:
                status = 429 if self.path == "/limit" else 201
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _exec_done(pid: int) -> bool:
    """``pid`` runs ``sleep`` with its environment in place: the kernel renames the process before it sets
    up the new image's environment, so the name alone can show while ``environ`` still reads empty."""
    if Path(f"/proc/{pid}/comm").read_text().strip() != "sleep":
        return False
    try:
        return Path(f"/proc/{pid}/environ").read_bytes() != b""
    except PermissionError:  # another user's process: its name is all we may see
        return True


@contextlib.contextmanager
def sleeper(*prefix: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """A process to aim at (``prefix`` runs it as someone else), in a session of its own (SIGCONT within a
    session needs no permission); ended after the block."""
    proc = subprocess.Popen(
        [*prefix, "sleep", "600"], env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not _exec_done(proc.pid):
            assert time.monotonic() < deadline, "sleep did not start"
            time.sleep(0.01)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(10)


class TestFiles:
    def test_read_succeeds_and_keeps_nothing(self, tmp_path: Path) -> None:
        """A readable file is read; the outcome says how much, never what."""
        secret = tmp_path / "token"
        secret.write_text("s3cret-value")
        outcome = read_file(str(secret))
        assert outcome.outcome == "succeeded" and "s3cret" not in outcome.to_json()

    def test_missing_file_is_a_failure_not_a_refusal(self, tmp_path: Path) -> None:
        """ENOENT is recorded as failed: a wrong path never passes for a refusal."""
        outcome = read_file(str(tmp_path / "nothing"))
        assert (outcome.outcome, outcome.error) == ("failed", "ENOENT")

    def test_write_opens_for_writing_and_changes_nothing(self, tmp_path: Path) -> None:
        """An open for writing is the attempt: it succeeds on our own file and leaves it as it was."""
        target = tmp_path / "fleet.yaml"
        target.write_text("instances: {}\n")
        assert write_file(str(target)).outcome == "succeeded"
        assert target.read_text() == "instances: {}\n"

    def test_own_files(self, tmp_path: Path) -> None:
        """Its own job: a file written and read back, and removed again."""
        outcome = own_file(str(tmp_path), "own-workspace-file")
        assert outcome.outcome == "succeeded" and list(tmp_path.iterdir()) == []


class TestProcesses:
    def test_environ_names_secret_variables_but_not_their_values(self) -> None:
        """Another process's environment, read: the names of its secret variables, never the values."""
        with sleeper(env={"PATH": os.environ["PATH"], "EYRIE_AUTH_TOKEN": "t0ken-value"}) as pid:
            outcome = read_environ(pid)
        assert outcome.outcome == "succeeded"
        assert "EYRIE_AUTH_TOKEN" in outcome.detail and "t0ken-value" not in outcome.to_json()

    def test_signal(self) -> None:
        """SIGCONT to a process we may signal is delivered."""
        with sleeper() as pid:
            assert send_signal(pid).outcome == "succeeded"

    def test_signal_to_no_process_fails(self) -> None:
        """A pid that is gone is a failure (ESRCH), not a refusal."""
        proc = subprocess.Popen(["true"])
        proc.wait(10)
        outcome = send_signal(proc.pid)
        assert (outcome.outcome, outcome.error) == ("failed", "ESRCH")


class TestSockets:
    def test_server_that_hangs_up_is_a_refusal(self, tmp_path: Path) -> None:
        """A server that closes without answering (eyried's uid check) refuses."""
        path = tmp_path / "s.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            server.listen(1)

            def hang_up() -> None:
                conn, _ = server.accept()
                conn.close()

            thread = threading.Thread(target=hang_up)
            thread.start()
            outcome = unix_get(str(path))
            thread.join(5)
        assert (outcome.attempt, outcome.outcome) == ("unix-get", "refused")

    def test_nobody_listening_fails(self, tmp_path: Path) -> None:
        """No socket there: failed (ENOENT), and an abstract name nobody holds: failed (ECONNREFUSED)."""
        assert unix_get(str(tmp_path / "none.sock")).error == "ENOENT"
        outcome = unix_get(f"@eyrie-test/{os.getpid()}/none")
        assert (outcome.attempt, outcome.outcome, outcome.error) == ("abstract-get", "failed", "ECONNREFUSED")

    def test_bind(self) -> None:
        """A free port binds; a held one fails with EADDRINUSE (a sandbox would say EACCES)."""
        assert bind_port(free_port()).outcome == "succeeded"
        with socket.create_server(("127.0.0.1", 0)) as held:
            outcome = bind_port(held.getsockname()[1])
        assert (outcome.outcome, outcome.error) == ("failed", "EADDRINUSE")

    def test_escape_leaves_the_session_and_the_environment(self) -> None:
        """The escaped attempt runs in a new session with an empty environment."""
        session = os.getsid(0)

        def look() -> Outcome:
            return Outcome("look", "self", "succeeded", detail=f"{os.getsid(0) != session} {len(os.environ)}")

        outcome = escaped(look)
        assert (outcome.variant, outcome.detail) == ("escape", "True 0")


class TestAgentApi:
    def test_token_from_file(self, tmp_path: Path) -> None:
        """The token read from its file is sent as a bearer token; a wrong one is refused (401), a limit
        reached is refused (429), a missing token file fails."""
        good, bad = tmp_path / "token", tmp_path / "other"
        good.write_text(TOKEN + "\n")
        bad.write_text("not-it\n")
        with agent_api() as url:
            created = api_call(url, str(good), "POST", "/v1/talons", '{"name": "t1"}')
            unauthorised = api_call(url, str(bad), "POST", "/v1/talons")
            limited = api_call(url, str(good), "POST", "/limit")
        missing = api_call(url, str(tmp_path / "none"), "POST", "/v1/talons")
        assert (created.outcome, created.http_status) == ("succeeded", 201)
        assert (unauthorised.outcome, unauthorised.http_status) == ("refused", 401)
        assert (limited.outcome, limited.http_status) == ("refused", 429)
        assert (missing.outcome, missing.error) == ("failed", "ENOENT")


@contextlib.asynccontextmanager
async def operator_api(home: Home) -> AsyncIterator[None]:
    app = create_app(MemoryTarget(str(home.root)), keepalive=0.05)
    async with anyio.create_task_group() as tg:
        await tg.start(
            functools.partial(serve, app, socket_path=home.socket_path, abstract_socket=home.operator_socket)
        )
        yield
        tg.cancel_scope.cancel()


def _outcomes(report: Path) -> dict[tuple[str, str, str], Outcome]:
    found = {}
    for line in report.read_text().splitlines():
        outcome = Outcome.from_json(line)
        found[outcome.attempt, outcome.target, outcome.variant] = outcome
    return found


@pytest.mark.anyio
@pytest.mark.skipif(os.getuid() != 0 or SETPRIV is None, reason="needs root and setpriv")
@pytest.mark.skipif(landlock_abi() < SCOPE_ABI, reason=f"Landlock scopes need ABI {SCOPE_ABI}")
class TestProgram:
    async def test_attempts_refused_by_what_refuses_them_here(self, home: Home, tmp_path: Path) -> None:
        """Run as root without capabilities, with no_new_privs and abstract sockets scoped: a file and a
        process of another uid, the operator's sockets (also from an escaped grandchild) and a wrong
        token are refused; its own files, port and a right token succeed; the report and the log agree,
        and ``POST /attack`` runs the attempts again."""
        assert SETPRIV is not None
        workspace, tmp = tmp_path / "workspace", tmp_path / "tmp"
        workspace.mkdir()
        tmp.mkdir()
        theirs = tmp_path / "their-token"
        theirs.write_text("their-secret\n")
        theirs.chmod(0o600)
        os.chown(theirs, NOBODY, NOBODY)
        token = tmp_path / "token"
        token.write_text(TOKEN + "\n")
        port = free_port()
        report = workspace / "hostile-report.jsonl"
        drop_caps = (SETPRIV, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all")
        nobody = (SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
        async with operator_api(home):
            with sleeper(*nobody) as their_pid, agent_api() as url:
                argv = [
                    *drop_caps,
                    *hostile(),
                    "--port",
                    str(port),
                    "--read-file",
                    str(theirs),
                    "--read-environ",
                    str(their_pid),
                    "--signal",
                    str(their_pid),
                    "--unix-get",
                    str(home.socket_path),
                    "--unix-get",
                    "@" + home.operator_socket[1:],
                    "--escape",
                    "--api",
                    "POST",
                    "/v1/talons",
                    '{"name": "t1"}',
                    "--api-url",
                    url,
                    "--token-file",
                    str(token),
                    "--own-job",
                ]
                env = {**os.environ, "TMPDIR": str(tmp)}
                start = functools.partial(
                    subprocess.Popen,
                    argv,
                    cwd=workspace,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    text=True,
                    preexec_fn=scope_abstract_unix_sockets,
                )
                agent = await anyio.to_thread.run_sync(start)
                try:
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                        async def ready() -> bool:
                            with contextlib.suppress(httpx.HTTPError):
                                return (await http.get("/ready")).status_code == 200
                            return False

                        await wait_for(ready, timeout=30)
                        again = (await http.post("/attack", timeout=30)).json()
                finally:
                    agent.send_signal(signal.SIGTERM)
                    log, _ = await anyio.to_thread.run_sync(functools.partial(agent.communicate, timeout=10))
        outcomes = _outcomes(report)
        abstract = "@" + home.operator_socket[1:]
        refused = [
            ("read-file", str(theirs), "direct"),
            ("read-environ", f"/proc/{their_pid}/environ", "direct"),
            ("signal", f"{their_pid}:SIGCONT", "direct"),
            ("unix-get", str(home.socket_path), "direct"),
            ("unix-get", str(home.socket_path), "escape"),
            ("abstract-get", abstract, "direct"),
            ("abstract-get", abstract, "escape"),
        ]
        for key in refused:
            assert outcomes[key].outcome == "refused", outcomes[key]
        assert outcomes["unix-get", str(home.socket_path), "direct"].http_status == 403
        assert outcomes["abstract-get", abstract, "escape"].error == "EPERM"
        assert outcomes["api", "POST /v1/talons", "direct"].http_status == 201
        for attempt in ("bind-own-port", "own-workspace-file", "own-tmp-file"):
            assert [o.outcome for (a, _, _), o in outcomes.items() if a == attempt] == ["succeeded"]
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert lines == [json.loads(line) for line in report.read_text().splitlines()]
        assert len(again) == len(refused) + 3  # every attempt again; the port was bound once
        assert agent.returncode == 0
