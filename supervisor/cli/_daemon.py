"""``daemon restart``: the upgrade path. eyried re-executes itself in place and adopts its running agents.

The command finds the daemon through ``$EYRIE_HOME/run/eyried.pid``, makes sure that pid really is an
eyried serving this home (its command line and environment, read with psutil: a stale pid file must never
get a stranger signalled), sends it SIGUSR2, and waits until the control socket answers again from the same
pid with a later ``started_at``. Same pid means systemd sees no restart and the agents stay its children.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import click
import psutil

from supervisor._safe_read import read_text
from supervisor.cli._app import Cli, CommandFailed
from supervisor.cli._render import duration
from supervisor.client import daemon_not_running
from supervisor.control.schema import DaemonStatus, InstanceView
from supervisor.errors import DaemonNotRunning, EyrieError
from supervisor.paths import Home

__all__ = ["daemon", "eyried_process"]

_POLL = 0.1
_PID_FILE_LIMIT = 64
_MODULES = ("supervisor.daemon", "supervisor.daemon.main")


def _read_pid(home: Home) -> int | None:
    try:
        return int(read_text(home.pid_file, limit=_PID_FILE_LIMIT).strip())
    except (OSError, ValueError):
        return None


def _is_eyried(cmdline: list[str]) -> bool:
    """``eyried ...`` (the console script, perhaps via its interpreter) or ``python -m supervisor.daemon``."""
    if any(Path(arg).name == "eyried" for arg in cmdline[:2]):
        return True
    return any(arg == "-m" and nxt in _MODULES for arg, nxt in itertools.pairwise(cmdline))


def _home_of(proc: psutil.Process, cmdline: list[str]) -> Path:
    """The home a running eyried serves: its ``--home``, else its ``$EYRIE_HOME``, else its ``~/.eyrie``."""
    raw: str | None = None
    for index, arg in enumerate(cmdline):
        if arg == "--home" and index + 1 < len(cmdline):
            raw = cmdline[index + 1]
        elif arg.startswith("--home="):
            raw = arg.removeprefix("--home=")
    if raw is None:
        env = proc.environ()
        raw = env.get("EYRIE_HOME") or os.path.join(env.get("HOME") or "~", ".eyrie")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path(proc.cwd()) / path
    return path


def eyried_process(home: Home) -> psutil.Process:
    """The eyried that serves ``home``, from its pid file; raises unless the pid is really that daemon."""
    pid = _read_pid(home)
    if pid is None:
        raise daemon_not_running(home)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
        cmdline = proc.cmdline()
        if not _is_eyried(cmdline):
            raise CommandFailed(
                f"{home.pid_file} names pid {pid}, which is not eyried ({' '.join(cmdline)[:80]!r});"
                " the pid file is stale: nothing was signalled"
            )
        served = _home_of(proc, cmdline)
    except psutil.NoSuchProcess:
        raise DaemonNotRunning(
            f"{home.pid_file} names pid {pid}, which is not running; {daemon_not_running(home)}"
        ) from None
    except psutil.AccessDenied:
        raise CommandFailed(
            f"{home.pid_file} names pid {pid}, which belongs to another user: nothing was signalled"
        ) from None
    if os.path.realpath(served) != os.path.realpath(home.root):
        raise CommandFailed(
            f"pid {pid} is an eyried for {served}, not for {home.root}: nothing was signalled"
        )
    return proc


@dataclass
class _Snapshot:
    status: DaemonStatus
    pids: dict[str, int]


async def _snapshot(cli: Cli) -> _Snapshot:
    async with cli.client() as client:
        status = await client.status()
        views: list[InstanceView] = await client.list_instances()
    return _Snapshot(status, {v.name: v.pid for v in views if v.pid})


async def _reexec(cli: Cli, proc: psutil.Process) -> tuple[_Snapshot, _Snapshot, float]:
    """Signal the daemon and wait until it answers again as a new program image; runs until cancelled."""
    try:
        before = await _snapshot(cli)
    except DaemonNotRunning:
        raise CommandFailed(
            f"eyried (pid {proc.pid}) does not answer on {cli.home.socket_path}; it may be starting or"
            " stuck: try again in a moment, or see its log"
        ) from None
    if before.status.pid != proc.pid:
        raise CommandFailed(
            f"{cli.home.socket_path} is served by pid {before.status.pid}, but {cli.home.pid_file} names"
            f" pid {proc.pid}: nothing was signalled"
        )
    began = time.monotonic()
    proc.send_signal(signal.SIGUSR2)
    while True:
        await anyio.sleep(_POLL)
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            raise CommandFailed(
                f"eyried (pid {proc.pid}) exited instead of re-executing; see its log"
                " (journalctl --user -u eyried when it runs under systemd)"
            )
        try:
            after = await _snapshot(cli)
        except EyrieError:
            continue  # between the old process image closing the socket and the new one opening it
        if after.status.pid != proc.pid:
            raise CommandFailed(
                f"eyried now answers as pid {after.status.pid}, not {proc.pid}: it was restarted, not"
                " re-executed in place"
            )
        if after.status.started_at > before.status.started_at:
            return before, after, time.monotonic() - began


@click.group()
def daemon() -> None:
    """Act on eyried itself.

    \b
    Examples:
      eyriectl daemon restart
      eyriectl daemon restart --timeout 120
    """


@daemon.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds to wait for eyried to answer again.",
)
@click.option("--json", "as_json", is_flag=True, help="The outcome as a JSON object.")
@click.pass_obj
def restart(cli: Cli, timeout: float, as_json: bool) -> None:
    """Re-execute eyried in place (after an upgrade); the agents keep running.

    Sends SIGUSR2 to the eyried named by $EYRIE_HOME/run/eyried.pid, after checking that this pid is an
    eyried serving this home. The daemon leaves its agents running, re-executes its (possibly upgraded)
    program under the same pid, so systemd sees no restart, and adopts every agent again. The command
    waits until the control socket answers from the same pid with a later start time, then says which
    agents kept their pids. Exit 3 when no eyried runs, 1 when it does not come back within --timeout.

    --json prints one object: pid, version, previous_version, seconds, kept (the agents with the same pid)
    and changed (agent → its new pid, null when it is not running).

    \b
    Examples:
      eyriectl daemon restart
      eyriectl --home /srv/agents daemon restart --timeout 120
    """
    proc = eyried_process(cli.home)

    async def reexec() -> tuple[_Snapshot, _Snapshot, float]:
        with anyio.fail_after(timeout):
            return await _reexec(cli, proc)

    try:
        before, after, seconds = cli.run(reexec)
    except TimeoutError:
        raise CommandFailed(
            f"eyried (pid {proc.pid}) did not answer again on {cli.home.socket_path} within {timeout:g}s;"
            " see its log"
        ) from None
    kept = sorted(name for name, pid in before.pids.items() if after.pids.get(name) == pid)
    changed = sorted(name for name in before.pids if name not in kept)
    if as_json:
        outcome = {
            "pid": after.status.pid,
            "version": after.status.version,
            "previous_version": before.status.version,
            "seconds": round(seconds, 3),
            "kept": kept,
            "changed": {name: after.pids.get(name) for name in changed},
        }
        cli.data(json.dumps(outcome, indent=2))
        return
    cli.out.print(
        f"eyried re-executed in place in {seconds:.1f}s: pid {after.status.pid}, version"
        f" {after.status.version} (was {before.status.version}, up {duration(before.status.uptime_seconds)})",
        markup=False,
    )
    cli.out.print(f"agents kept running with the same pid: {len(kept)} of {len(before.pids)}", markup=False)
    for name in changed:
        now = after.pids.get(name)
        cli.out.print(f"  {name}: pid {before.pids[name]} → {now or 'not running'}", markup=False)
