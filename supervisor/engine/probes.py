"""Readiness and liveness probes: one shape, ``await check(probe, ctx) -> ProbeResult``.

Kinds: ``http`` (GET 127.0.0.1:port+path, status == expect), ``tcp`` (connect), ``log`` (regex on output
appended to the log since the previous check; the first check sees everything since the process started),
``exec`` (a command, no shell, exits 0), ``process`` (alive for ``seconds``; `process_alive` answers it
without awaiting). Every check is bounded by the context's timeout and never raises for a failing target: a
failure is a result with a reason.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from supervisor.engine import _net, procfs
from supervisor.engine.bounded_command import wait_or_kill_group
from supervisor.engine.child_setup import empty_signal_mask
from supervisor.engine.logfile import LogCursor
from supervisor.engine.process import ProcessHandle
from supervisor.frameworks.spec import Probe, ProbeKind

__all__ = ["ProbeContext", "ProbeResult", "check", "expand", "process_alive", "validate"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str = ""


@dataclass(slots=True, eq=False)
class ProbeContext:
    """What a probe may look at for one instance's current process."""

    port: int
    process: ProcessHandle
    timeout: float
    instance_id: str = ""
    name: str = ""
    cwd: Path | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)  # complete environment for exec
    log: LogCursor | None = None
    host: str = "127.0.0.1"


def expand(text: str, *, port: int, name: str, instance_id: str) -> str:
    """Replace ``{port}``, ``{name}`` and ``{id}``; other braces (regex quantifiers) stay as they are."""
    return text.replace("{port}", str(port)).replace("{name}", name).replace("{id}", instance_id)


def _expand(text: str, ctx: ProbeContext) -> str:
    return expand(text, port=ctx.port, name=ctx.name, instance_id=ctx.instance_id)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate(probe: Probe, *, port: int, name: str, instance_id: str) -> None:
    """Raise ValueError saying what is wrong with a probe that could never pass for this instance (what
    the probe alone gets wrong, `Probe` refuses when it is built)."""
    if probe.kind == ProbeKind.LOG:
        try:
            _compile(expand(probe.pattern, port=port, name=name, instance_id=instance_id))
        except re.error as exc:
            raise ValueError(
                f"log probe pattern {probe.pattern!r} is not a valid regular expression: {exc}"
            ) from None
    elif probe.kind in (ProbeKind.HTTP, ProbeKind.TCP) and not port:
        raise ValueError(f"{probe.kind.value} probe needs a port")


async def check(probe: Probe, ctx: ProbeContext) -> ProbeResult:
    """Run one probe, bounded by ``ctx.timeout``."""
    if probe.kind in _INSTANT:  # no I/O to wait for: nothing to bound
        return await _KINDS[probe.kind](probe, ctx)
    result = ProbeResult(False, f"{probe.kind.value} probe timed out after {ctx.timeout:g}s")
    with anyio.move_on_after(ctx.timeout):
        result = await _KINDS[probe.kind](probe, ctx)
    return result


async def _http(probe: Probe, ctx: ProbeContext) -> ProbeResult:
    path = _expand(probe.path, ctx)
    try:
        status = await _net.http_status(ctx.port, path, ctx.host)
    except (OSError, _net.HTTPProbeError) as exc:
        return ProbeResult(False, f"GET {path} on port {ctx.port}: {_reason(exc)}")
    if status != probe.expect:
        return ProbeResult(False, f"GET {path} on port {ctx.port}: status {status}, expected {probe.expect}")
    return ProbeResult(True, f"GET {path}: {status}")


async def _tcp(probe: Probe, ctx: ProbeContext) -> ProbeResult:
    try:
        sock = await _net.connect(ctx.port, ctx.host)
    except OSError as exc:
        return ProbeResult(False, f"connect to port {ctx.port}: {_reason(exc)}")
    sock.close()
    return ProbeResult(True, f"port {ctx.port} accepts connections")


async def _log(probe: Probe, ctx: ProbeContext) -> ProbeResult:
    if ctx.log is None:
        return ProbeResult(False, "log probe has no log file to read")
    pattern = _expand(probe.pattern, ctx)
    try:
        regex = _compile(pattern)
    except re.error as exc:
        return ProbeResult(False, f"log probe pattern {pattern!r} is invalid: {exc}")
    if ctx.log.search(regex):
        return ProbeResult(True, f"log matched {pattern!r}")
    return ProbeResult(False, f"no new log line matches {pattern!r}")


async def _process(probe: Probe, ctx: ProbeContext) -> ProbeResult:
    return process_alive(probe, ctx.process)


def process_alive(probe: Probe, process: ProcessHandle) -> ProbeResult:
    """The ``process`` probe, which has nothing to wait for: a look at the process's pidfd (and its age)."""
    if not process.alive():
        return ProbeResult(False, f"process {process.pid} is not running")
    if probe.seconds <= 0:
        return ProbeResult(True, f"process {process.pid} is running")
    age = procfs.age(process.start_ticks)
    if age < probe.seconds:
        return ProbeResult(False, f"process alive for {age:.1f}s of {probe.seconds:g}s")
    return ProbeResult(True, f"process {process.pid} alive for {age:.1f}s")


async def _exec(probe: Probe, ctx: ProbeContext) -> ProbeResult:
    argv = [_expand(arg, ctx) for arg in probe.command]
    if not argv:
        return ProbeResult(False, "exec probe has no command")
    try:
        proc = _start_command(argv, ctx)
    except OSError as exc:
        return ProbeResult(False, f"cannot run {argv[0]}: {_reason(exc)}")
    code = await wait_or_kill_group(proc)  # the probe's timeout cancels it
    if code == 0:
        return ProbeResult(True, f"{argv[0]} exited 0")
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited {code}"
    return ProbeResult(False, f"{argv[0]} {how}")


def _start_command(argv: list[str], ctx: ProbeContext) -> subprocess.Popen[bytes]:
    """Start a probe command in its own session (so a timeout can end all of it); a fork+exec, no wait."""
    with empty_signal_mask():
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ctx.cwd,
            env=dict(ctx.env) if ctx.env is not None else None,
            close_fds=True,
            start_new_session=True,
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


_KINDS: dict[ProbeKind, Callable[[Probe, ProbeContext], Awaitable[ProbeResult]]] = {
    ProbeKind.HTTP: _http,
    ProbeKind.TCP: _tcp,
    ProbeKind.LOG: _log,
    ProbeKind.PROCESS: _process,
    ProbeKind.EXEC: _exec,
}

_INSTANT = frozenset({ProbeKind.PROCESS, ProbeKind.LOG})
