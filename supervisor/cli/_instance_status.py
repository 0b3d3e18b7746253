"""``eyriectl status NAME``: one instance on one screen, as ``systemctl status unit`` shows a unit.

Every value may come from a process or a file (a command line, a log line), so each line passes through
`printable` on its way to the terminal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from supervisor.cli._render import dumps, duration, printable
from supervisor.models import format_size

if TYPE_CHECKING:
    from supervisor.cli._app import Cli
    from supervisor.control.schema import InstanceDetail, ProbeState, ProcessRow
    from supervisor.models import LastExit

__all__ = ["detail_lines", "show_instance_status"]

_DASH = "-"
_LABEL = 11


def show_instance_status(cli: Cli, name: str, as_json: bool) -> None:
    """Print instance ``name``'s detail (or its JSON); an unknown name fails with exit code 1."""

    async def fetch() -> InstanceDetail:
        async with cli.client() as client:
            return await client.instance_status(name)

    detail = cli.run(fetch)
    if as_json:
        cli.out.print(dumps(detail), markup=False)
        return
    for line in detail_lines(detail, now=datetime.now(UTC)):
        cli.out.print(line, markup=False, highlight=False)


def detail_lines(d: InstanceDetail, *, now: datetime) -> list[str]:
    """The screen, line by line (each already made printable)."""
    lines = [f"● {d.name} ({d.framework or _DASH}, id {d.id or _DASH})"]
    status = d.status or "not provisioned"
    health = f", {d.health_status}" if d.health_status and d.status == "running" else ""
    since = f" since {_when(d.since, now)}" if d.since else ""
    lines.append(_row("Status", f"{status}{health}{since}"))
    if d.status_detail:
        lines.append(_row("Detail", f"{d.status_detail} (phase {d.phase or _DASH})"))
    if d.flags:
        lines.append(_row("Flags", " ".join(d.flags)))
    if d.pid is not None:
        lines.append(_row("Process", f"pid {d.pid}, port {d.port}, up {duration(d.uptime_seconds)}"))
    lines.append(_row("Resources", _resources(d)))
    restarts = f"{d.restart_count} since the last stable run, {d.total_restarts} in all"
    if d.next_start_at is not None:
        restarts += f"; next start {_when(d.next_start_at, now)}"
    lines.append(_row("Restarts", restarts))
    if d.last_exit is not None:
        lines.append(_row("Last exit", _last_exit(d.last_exit, now)))
    if d.last_error:
        lines.append(_row("Last error", d.last_error))
    for i, probe in enumerate(d.probes):
        lines.append(_row("Probes" if i == 0 else "", _probe(probe, now)))
    if d.config_path:
        lines.append(_row("Config", d.config_path))
    if d.log_path:
        lines.append(_row("Log", d.log_path))
    if d.processes:
        lines.append(_row("Tree", f"{len(d.processes)} process{'es' if len(d.processes) != 1 else ''}"))
        lines += [_row("", _process(p, last=i == len(d.processes) - 1)) for i, p in enumerate(d.processes)]
    if d.log_lines:
        lines.append("")
        lines += [printable(line) for line in d.log_lines]
    return lines


def _row(label: str, value: str) -> str:
    head = f"{label}:" if label else ""
    return f"{head:>{_LABEL}} {printable(value)}"


def _resources(d: InstanceDetail) -> str:
    memory = format_size(d.memory_bytes) if d.memory_bytes is not None else _DASH
    if d.max_memory is not None:
        memory += f" (limit {format_size(d.max_memory)} after {d.memory_grace} samples)"
    cpu = f"{d.cpu_percent:g}%" if d.cpu_percent is not None else _DASH
    seconds = f", {d.cpu_seconds:g}s in all" if d.cpu_seconds is not None else ""
    return f"memory {memory}, CPU {cpu}{seconds}"


def _last_exit(last: LastExit, now: datetime) -> str:
    text = f"killed by signal {last.signal}" if last.signal is not None else f"exit code {last.code}"
    if last.code is None and last.signal is None:
        text = "how is not known"
    if last.reason:
        text = f"{last.reason}: {text}"
    return f"{text} ({_when(last.time, now)})" if last.time is not None else text


def _probe(p: ProbeState, now: datetime) -> str:
    every = f" every {p.interval:g}s" if p.interval is not None else ""
    text = f"{p.role} {p.kind}: {p.target}{every}"
    if p.ok is None:
        return f"{text}; not run yet"
    outcome = "passed" if p.ok else "failed"
    detail = f" ({p.detail})" if p.detail else ""
    when = f" {_when(p.at, now)}" if p.at is not None else ""
    return f"{text}; {outcome}{when}{detail}"


def _process(p: ProcessRow, *, last: bool) -> str:
    branch = "└─" if last else "├─"
    cpu = f"{p.cpu_percent:g}%" if p.cpu_percent is not None else _DASH
    pss = f", PSS {format_size(p.pss_bytes)}" if p.pss_bytes is not None else ""
    return f"{branch} {p.pid} {p.command or '?'}  [CPU {cpu}, RSS {format_size(p.rss_bytes)}{pss}]"


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return _DASH
    ago = (now - at).total_seconds()
    stamp = at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{stamp}; {duration(abs(ago))} {'ago' if ago >= 0 else 'from now'}"
