"""Each probe kind against real processes, sockets and files; every probe bounded by its timeout."""

from __future__ import annotations

import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from supervisor.engine import ProbeContext, SpawnedProcess, spawn
from supervisor.engine.logfile import LogCursor
from supervisor.engine.probes import check, expand, validate
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.testing import faulty, free_port, process_gone, wait_for

pytestmark = pytest.mark.anyio


async def _start(tmp_path: Path, *flags: str, port: int = 0) -> SpawnedProcess:
    argv = faulty(*flags, "--port", str(port)) if port else faulty(*flags)
    return spawn(argv, env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path, log_path=tmp_path / "out.log")


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[tuple[SpawnedProcess, int]]:
    """A child serving /health and /ready, turning unhealthy after 60 s."""
    port = free_port()
    proc = await _start(tmp_path, "--http", "--unhealthy-after", "60", port=port)
    ctx = ProbeContext(port=port, process=proc, timeout=2.0)
    await wait_for(lambda: _ok(check(Probe(kind=ProbeKind.TCP), ctx)))
    yield proc, port
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


class TestHttpProbe:
    async def test_expected_status_passes(self, web: tuple[SpawnedProcess, int]) -> None:
        """GET /health answering 200 passes a probe expecting 200."""
        proc, port = web
        result = await check(Probe(kind=ProbeKind.HTTP, path="/health"), ProbeContext(port, proc, 1.0))
        assert result.ok and result.detail == "GET /health: 200"

    async def test_other_status_fails_with_both_codes(self, web: tuple[SpawnedProcess, int]) -> None:
        """A status other than `expect` fails, naming what came and what was expected."""
        proc, port = web
        result = await check(
            Probe(kind=ProbeKind.HTTP, path="/nope", expect=200), ProbeContext(port, proc, 1.0)
        )
        assert not result.ok and result.detail == f"GET /nope on port {port}: status 404, expected 200"

    async def test_refused_connection_fails(self, tmp_path: Path) -> None:
        """Nobody listening: the probe fails with the connection error, quickly."""
        proc = await _start(tmp_path)
        port = free_port()
        try:
            result = await check(Probe(kind=ProbeKind.HTTP), ProbeContext(port, proc, 1.0))
            assert not result.ok and result.detail == f"GET /health on port {port}: Connection refused"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def test_unhealthy_child_answers_503(self, tmp_path: Path) -> None:
        """A child gone unhealthy fails the probe with its 503."""
        port = free_port()
        proc = await _start(tmp_path, "--http", "--unhealthy-after", "0", port=port)
        try:
            ctx = ProbeContext(port, proc, 1.0)
            await wait_for(lambda: _ok(check(Probe(kind=ProbeKind.TCP), ctx)))
            result = await check(Probe(kind=ProbeKind.HTTP, path="/health"), ctx)
            assert not result.ok and "status 503" in result.detail
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def test_silent_server_times_out(self, tmp_path: Path) -> None:
        """A server that accepts but never answers fails after the probe timeout."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            proc = await _start(tmp_path)
            try:
                result = await check(
                    Probe(kind=ProbeKind.HTTP), ProbeContext(server.getsockname()[1], proc, 0.2)
                )
                assert not result.ok and result.detail == "http probe timed out after 0.2s"
            finally:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()


class TestTcpProbe:
    async def test_listening_port_passes_and_closed_port_fails(self, web: tuple[SpawnedProcess, int]) -> None:
        """A listening port accepts; a free one is refused."""
        proc, port = web
        assert (await check(Probe(kind=ProbeKind.TCP), ProbeContext(port, proc, 1.0))).ok
        closed = free_port()
        result = await check(Probe(kind=ProbeKind.TCP), ProbeContext(closed, proc, 1.0))
        assert not result.ok and result.detail == f"connect to port {closed}: Connection refused"


class TestLogProbe:
    async def test_ready_line_written_after_start_matches(self, tmp_path: Path) -> None:
        """A ready line printed by the child matches, with {port} expanded in the pattern."""
        port = free_port()
        log = tmp_path / "out.log"
        log.write_text("HERMES_BACKEND_READY port=1 (an older run)\n")
        cursor = LogCursor(log)
        proc = await _start(
            tmp_path, "--ready-line", f"HERMES_BACKEND_READY port={port}", "--ready-delay", "0.2"
        )
        try:
            probe = Probe(kind=ProbeKind.LOG, pattern="HERMES_BACKEND_READY port={port}")
            ctx = ProbeContext(port, proc, 1.0, log=cursor)
            assert not (await check(probe, ctx)).ok
            result = await wait_for(lambda: _ok(check(probe, ctx)))
            assert result
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def test_only_new_output_counts(self, tmp_path: Path) -> None:
        """Each check looks at output since the previous one: an old match does not pass again."""
        log = tmp_path / "out.log"
        cursor = LogCursor(log, 0)
        log.write_text("heartbeat\n")
        pattern = re.compile("heartbeat")
        assert cursor.search(pattern)
        assert not cursor.search(pattern)
        with log.open("a") as f:
            f.write("heart")
        assert not cursor.search(pattern)
        with log.open("a") as f:
            f.write("beat\n")
        assert cursor.search(pattern)

    async def test_cursor_follows_truncation_and_rotation(self, tmp_path: Path) -> None:
        """After a rotation the unread tail comes from the backup; after truncation reading starts over."""
        log = tmp_path / "out.log"
        log.write_text("one\ntwo\n")
        cursor = LogCursor(log, 0)
        assert cursor.read_new() == b"one\ntwo\n"
        with log.open("a") as f:
            f.write("three\n")
        backup = tmp_path / "out.log.1"
        backup.write_bytes(log.read_bytes())
        log.write_text("four\n")
        cursor.rotated(backup, len(b"one\ntwo\nthree\n"))
        assert cursor.read_new() == b"three\nfour\n"
        log.write_text("")
        with log.open("a") as f:
            f.write("5\n")
        assert cursor.read_new() == b"5\n"

    async def test_without_a_log_the_probe_fails(self, tmp_path: Path) -> None:
        """A log probe with no log to read fails with a reason."""
        proc = await _start(tmp_path)
        try:
            result = await check(Probe(kind=ProbeKind.LOG, pattern="x"), ProbeContext(0, proc, 1.0))
            assert not result.ok and result.detail == "log probe has no log file to read"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


class TestExecProbe:
    async def test_exit_zero_passes_and_non_zero_fails(self, tmp_path: Path) -> None:
        """The command's exit status decides; placeholders are expanded; no shell is involved."""
        proc = await _start(tmp_path)
        try:
            ok = Probe(
                kind=ProbeKind.EXEC, command=[sys.executable, "-c", "import sys; sys.exit('{port}' != '7')"]
            )
            assert (await check(ok, ProbeContext(7, proc, 2.0, cwd=tmp_path))).ok
            bad = Probe(kind=ProbeKind.EXEC, command=[sys.executable, "-c", "raise SystemExit(3)"])
            result = await check(bad, ProbeContext(7, proc, 2.0, cwd=tmp_path))
            assert not result.ok and result.detail.endswith("exited 3")
            missing = Probe(kind=ProbeKind.EXEC, command=["no-such-probe-cmd"])
            result = await check(missing, ProbeContext(7, proc, 2.0, cwd=tmp_path))
            assert not result.ok and result.detail.startswith("cannot run no-such-probe-cmd")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def test_slow_command_times_out_and_is_killed(self, tmp_path: Path) -> None:
        """A command that outlives the timeout fails and is killed with everything it started."""
        proc = await _start(tmp_path)
        pid_file = tmp_path / "probe.pid"
        script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
        try:
            probe = Probe(kind=ProbeKind.EXEC, command=[sys.executable, "-c", script])
            result = await check(probe, ProbeContext(0, proc, 0.5, cwd=tmp_path))
            assert not result.ok and result.detail == "exec probe timed out after 0.5s"
            assert process_gone(int(pid_file.read_text()))
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


class TestProcessProbe:
    async def test_alive_for_seconds(self, tmp_path: Path) -> None:
        """Passes once the process has lived `seconds`; fails once it is gone."""
        proc = await _start(tmp_path)
        probe = Probe(kind=ProbeKind.PROCESS, seconds=0.3)
        ctx = ProbeContext(0, proc, 1.0)
        first = await check(probe, ctx)
        assert not first.ok and first.detail.startswith("process alive for")
        await wait_for(lambda: _ok(check(probe, ctx)))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        result = await check(probe, ctx)
        assert not result.ok and result.detail == f"process {proc.pid} is not running"


class TestValidate:
    def test_bad_probes_are_refused_with_the_reason(self) -> None:
        """An invalid regex, an empty exec command or a port probe without a port is a clear ValueError."""
        with pytest.raises(ValueError, match="not a valid regular expression"):
            validate(Probe(kind=ProbeKind.LOG, pattern="ready(("), port=1, name="a", instance_id="b")
        with pytest.raises(ValueError, match="exec probe needs a command"):
            Probe(kind=ProbeKind.EXEC, command=[])
        with pytest.raises(ValueError, match="log probe needs a pattern"):
            Probe(kind=ProbeKind.LOG)
        with pytest.raises(ValueError, match="http probe needs a port"):
            validate(Probe(kind=ProbeKind.HTTP), port=0, name="a", instance_id="b")

    def test_expand_leaves_regex_braces_alone(self) -> None:
        """{port}, {name} and {id} are replaced; a quantifier like {3} stays."""
        assert expand("a{3} {port} {name} {id}", port=5, name="n", instance_id="i") == "a{3} 5 n i"


async def _ok(result: object) -> bool:
    return bool((await result).ok)  # type: ignore[misc]
