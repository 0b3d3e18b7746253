"""Getting a process for an instance: spawning one (the child's environment, the port check, the fork/exec)
or adopting the one its record names."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from supervisor._own_env import DAEMON_ONLY
from supervisor.engine import procfs
from supervisor.engine._escaped import end_escaped, runs_in
from supervisor.engine._logs import InstanceLog, log_size
from supervisor.engine._redact import redact_cmdline
from supervisor.engine._services import PortCheck, Services
from supervisor.engine.logfile import LogCursor
from supervisor.engine.process import AdoptedProcess, ProcessHandle, SpawnedProcess, spawn_keeping_log
from supervisor.engine.recovery import same_program
from supervisor.engine.runtime import InstanceRuntime
from supervisor.errors import EyrieError, PortClaimsUnusable, StartFailed
from supervisor.models import Instance, utcnow
from supervisor.port_claims import PortOwner
from supervisor.ports import holder_pid, port_holder, port_in_use
from supervisor.sandbox.confine import OFF

__all__ = [
    "adopt",
    "check_port",
    "child_env",
    "launched_otherwise",
    "relocate",
    "sandbox_label",
    "spawn_child",
    "spawned_fields",
]

_STORM_WRITES = 0.05
"""Seconds for which state writes go to worker threads after a spawn in a crowd ends (a crash storm): each
of them waits on the disk, and on the loop it would hold back the respawns behind it."""

_CHILD_ENV_DROP = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


_inherited: tuple[dict[Any, Any], dict[str, str]] | None = None
"""os.environ as last seen (its raw bytes), and what of it a child inherits."""


def child_env(rt: InstanceRuntime) -> dict[str, str]:
    """The child's complete environment: ours (minus systemd's notify/socket variables, what the daemon set
    for itself, and our ``EYRIE_HOME``: the runtime's says which home the process is of), the runtime's
    additions, and the instance's identity (``EYRIE_INSTANCE_ID`` with ``EYRIE_HOME`` marks every process
    of its tree)."""
    env = dict(_inherited_env())
    env.update(rt.env)
    env[procfs.MARKER_VAR] = rt.instance_id
    env["EYRIE_INSTANCE_NAME"] = rt.name
    env["EYRIE_PORT"] = str(rt.port)
    return env


def _inherited_env() -> dict[str, str]:
    """What a child inherits of our environment, filtered again only when os.environ changed: its raw
    bytes are compared in C, where decoding every variable costs ~50 µs a spawn."""
    global _inherited
    raw = getattr(os.environ, "_data", None)
    if raw is None or _inherited is None or _inherited[0] != raw:
        dropped = {*_CHILD_ENV_DROP, *DAEMON_ONLY, procfs.HOME_VAR}
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        if raw is None:
            return env
        _inherited = (dict(raw), env)
    return _inherited[1]


async def check_port(
    rt: InstanceRuntime, services: Services, sweep: Callable[[], Awaitable[None]], log: Any
) -> str | None:
    """Who keeps this instance off its port: None when it may bind it, else the holder, named.

    The port is claimed machine-wide for the instance first (a claim of another home or user makes it
    held); then our own leftovers are cleared off it (``sweep``), and a process that escaped an earlier
    run's tree (see `supervisor.engine._escaped`); anything still bound there is a stranger."""
    port = rt.port
    if not port:
        return None
    bound: bool | None = None
    if _still_ours(rt, services):  # a respawn: one stat, on the loop even in a crash storm
        claimed = None
    elif services.writing.crowded(anyio.current_time()):  # a fleet starting: one thread call for many
        check = functools.partial(_claim_and_probe, rt, services, log)
        claimed, bound = await services.port_checks.run(check)
    else:  # a lone claim costs less than a thread's round trip
        claimed = _claim(rt, services, log)
    if claimed is not None:
        return claimed
    if not (port_in_use(port) if bound is None else bound):
        return None
    pid = await anyio.to_thread.run_sync(holder_pid, port, limiter=services.threads)
    if pid is not None and procfs.read_marker(pid) == rt.marker:
        log.warning("port_held_by_leftover", port=port, holder=pid)
        await sweep()
        if not port_in_use(port):
            return None
    pid = await anyio.to_thread.run_sync(holder_pid, port, limiter=services.threads)
    if pid is not None and runs_in(pid, rt.cwd):
        log.warning("port_held_by_escaped_process", port=port, holder=pid)
        await end_escaped(pid, rt.stop_signal, rt.stop_timeout)
        if not port_in_use(port):
            return None
    holder = await anyio.to_thread.run_sync(port_holder, port, limiter=services.threads)
    return holder or "another process"


def _still_ours(rt: InstanceRuntime, services: Services) -> bool:
    """The port's claim is ours, as it was when last read (`_ours`); no stat for a port never read (a
    fleet's first start)."""
    known = _ours.get(rt.port)
    if known is None:
        return False
    path = os.path.join(services.claims.root, str(rt.port))
    seen = _identity(path)
    return seen is not None and known == ((rt.instance_id, services.store.root, path), seen)


def _claim_and_probe(rt: InstanceRuntime, services: Services, log: Any) -> PortCheck:
    """`_claim`, then, when the claim is ours, the bind check, in the same worker-thread call."""
    claimed = _claim(rt, services, log)
    return claimed, claimed is None and port_in_use(rt.port)


def _claim(rt: InstanceRuntime, services: Services, log: Any) -> str | None:
    """Claim the port for this instance (instances made before claims existed get theirs here); the
    holder's description when another home or user has it. An unusable claims directory is logged and
    leaves only the bind check."""
    store = services.store
    path = os.path.join(services.claims.root, str(rt.port))
    key = (rt.instance_id, store.root, path)
    seen = _identity(path)
    owner = PortOwner.of(store.root.parent, store.dir(rt.instance_id), rt.instance_id)
    try:
        found = services.claims.claim(rt.port, owner)
    except PortClaimsUnusable as exc:
        log.warning("port_claims_unusable", error=str(exc))
        return None
    if found is None and seen is not None:
        _ours[rt.port] = (key, seen)
    return None if found is None else f"a claim of {found.describe()}"


_ours: dict[int, tuple[tuple[str, Path, str], tuple[int, int, int]]] = {}
"""Claims found to be ours, by port: whose (instance id, store, claim file), and the file's inode, size and
mtime then. While those stay, the claim is ours without a read: another claimer's file is a new inode."""


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


async def relocate(rt: InstanceRuntime, holder: str, services: Services) -> InstanceRuntime:
    """The runtime to start with instead, on another port; `StartFailed` naming the holder when the
    instance may not move (no relocator, a pinned port, ``on_conflict: fail``) or cannot."""
    held = f"port {rt.port} is held by {holder}"
    if services.relocate is None:
        raise StartFailed(held)
    try:
        moved = await services.relocate(rt, holder)
    except EyrieError as exc:
        raise StartFailed(f"{held}, and moving to another port failed: {exc}") from exc
    if moved is None:
        raise StartFailed(held)
    return moved


async def spawn_child(rt: InstanceRuntime, services: Services, logs: InstanceLog, log: Any) -> ProcessHandle:
    """Rotate a log already too big, then fork/exec: on the loop when alone (quicker for a lone respawn), in
    a crowd batched with the others' in worker threads (`WriteBatch`: a few thread calls, not one a spawn).
    ``logs.cursor`` then marks where the new run's output starts."""
    offset = log_size(rt.log_path)
    if offset >= rt.logs.max_bytes:
        await logs.rotate(rt, None, services.threads, log)
        offset = log_size(rt.log_path)
    start = functools.partial(_confined_spawn, rt, services, log)
    if services.spawning.crowded(anyio.current_time()):
        proc, log_fd = await services.spawns.run(start)
        services.writing.surge(anyio.current_time(), _STORM_WRITES)
    else:
        proc, log_fd = start()
    logs.cursor = LogCursor(rt.log_path, offset)
    logs.lines.take(rt.log_path, log_fd)  # eyried's lines go to the file the child now writes to
    return proc


def _confined_spawn(rt: InstanceRuntime, services: Services, log: Any) -> tuple[SpawnedProcess, int]:
    """Fork/exec under the instance's confinement (its ruleset built at the first spawn of its policy)."""
    confiner = None
    if rt.sandbox is not None:
        try:
            confiner = services.sandboxes.prepare(rt.instance_id, rt.sandbox, log.warning).confiner
        except OSError as exc:
            raise StartFailed(f"cannot prepare the sandbox: {exc}") from None
    return spawn_keeping_log(rt.argv, env=child_env(rt), cwd=rt.cwd, log_path=rt.log_path, confine=confiner)


def sandbox_label(rt: InstanceRuntime, services: Services) -> str:
    """How ``ps`` describes the confinement of ``rt``'s process: ``landlock v7``, ``unavailable``, ``off``."""
    return OFF if rt.sandbox is None else services.sandboxes.label


def spawned_fields(proc: ProcessHandle, rt: InstanceRuntime, services: Services) -> dict[str, Any]:
    """What the record says about a process just spawned (its command line without secrets, and how it
    is confined)."""
    return {
        "sandbox": sandbox_label(rt, services),
        "pid": proc.pid,
        "pgid": proc.pgid,
        "proc_start_time": proc.start_time,
        "boot_id": services.boot_id,
        "cmdline": redact_cmdline(proc.cmdline, rt.secret_values()),
        "started_at": utcnow(),
        "next_start_at": None,
        "config_hash": rt.config_hash,
        "launch_hash": rt.launch_hash(),
    }


def adopt(record: Instance, rt: InstanceRuntime, secrets: frozenset[str]) -> AdoptedProcess | None:
    """The process ``record`` names, if it still runs as recorded (its command line compared without the
    ``secrets``, `InstanceRuntime.secret_values`, which the record never holds); None when it is gone."""

    def same_cmdline(current: Any, recorded: Any) -> bool:
        return same_program(redact_cmdline(current, secrets), list(recorded))

    assert record.pid is not None
    return AdoptedProcess.adopt(
        record.pid,
        start_time=record.proc_start_time or 0.0,
        cmdline=record.cmdline or [],
        marker=rt.marker,
        legacy_marker=rt.instance_id,
        same_cmdline=same_cmdline,
    )


def launched_otherwise(record: Instance, rt: InstanceRuntime, secrets: frozenset[str]) -> bool:
    """Whether the recorded process was started from other launch data than ``rt`` (an edit made while no
    daemon ran, or a restart a dead daemon never finished). A record from before launch hashes has none:
    its process is adopted as it is. ``secrets``: `InstanceRuntime.secret_values`."""
    return bool(record.launch_hash) and record.launch_hash != rt.launch_hash(secrets)
