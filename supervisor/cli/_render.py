"""How ``eyriectl`` shows things to a person: the ps table, events, daemon status, reload results.

Pure formatting; ``--json`` output bypasses this module entirely (JSON escapes control characters itself).
Every value shown here may come from a process (its name in ``/proc``) or a hand-edited file, so each
passes through `printable` on its way out: no value can send a terminal escape sequence, move the cursor
or fake a line of output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from rich.table import Table
from rich.text import Text

from supervisor.control.schema import DaemonStatus, Event, InstanceView, ReloadResult

__all__ = [
    "PS_COLUMNS",
    "dumps",
    "duration",
    "event_line",
    "plan_lines",
    "printable",
    "ps_table",
    "reload_lines",
    "status_lines",
    "view_line",
]

PS_COLUMNS = (
    "NAME",
    "FRAMEWORK",
    "ROLE",
    "STATUS",
    "HEALTH",
    "PID",
    "PORT",
    "UPTIME",
    "RESTARTS",
    "SANDBOX",
    "FLAGS",
)

_STATUS_STYLE = {
    "running": "green",
    "starting": "cyan",
    "stopped": "yellow",
    "error": "bold red",
    "created": "",
}
_HEALTH_STYLE = {"healthy": "green", "unhealthy": "red"}
_DASH = "-"
_UNPRINTABLE = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}
_UNPRINTABLE_BUT_LINES = {code: text for code, text in _UNPRINTABLE.items() if code not in (0x09, 0x0A)}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character (C0, DEL, C1) and bidirectional override shown as an escape
    (``\\x1b``), so that it reaches the terminal as text; ``lines=True`` keeps newlines and tabs."""
    return text.translate(_UNPRINTABLE_BUT_LINES if lines else _UNPRINTABLE)


def dumps(data: BaseModel | Sequence[BaseModel] | Any) -> str:
    """JSON for ``--json``: models dumped with their JSON keys, lists as lists."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list | tuple):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    return json.dumps(data, indent=2)


def duration(seconds: float | None) -> str:
    """``42s``, ``3m12s``, ``5h04m``, ``2d03h``; a dash when unknown."""
    if seconds is None:
        return _DASH
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _status(view: InstanceView) -> Text:
    if not view.status:
        return Text(_DASH)
    text = Text(printable(view.status), style=_STATUS_STYLE.get(view.status, ""))
    if view.status_detail:
        text.append(f" ({printable(view.status_detail)})")
    return text


def ps_table(views: Iterable[InstanceView]) -> Table:
    """The ps table; on a narrow terminal only STATUS is shortened, every other cell shows in full."""
    rows = [_row(v) for v in views]
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for index, column in enumerate(PS_COLUMNS):
        widest = max([len(column), *(len(row[index]) for row in rows)])
        table.add_column(
            column,
            no_wrap=True,
            justify="right" if column in ("PID", "PORT", "RESTARTS") else "left",
            min_width=None if column == "STATUS" else widest,
        )
    for row in rows:
        table.add_row(*row)
    return table


def _row(v: InstanceView) -> list[Text]:
    health = v.health_status if v.status and v.health_status else "unknown"
    return [
        Text(printable(v.name)),
        Text(printable(v.framework or _DASH)),
        Text(printable(v.hierarchy_role.value or _DASH)),
        _status(v),
        Text(printable(health if health != "unknown" else _DASH), style=_HEALTH_STYLE.get(health, "")),
        Text(str(v.pid) if v.pid else _DASH),
        Text(str(v.port) if v.port else _DASH),
        Text(duration(v.uptime_seconds)),
        Text(str(v.restart_count)),
        Text(printable(v.sandbox or _DASH), style="red" if v.sandbox in ("off", "unavailable") else ""),
        Text(printable(",".join(v.flags) or _DASH), style="magenta" if v.flags else ""),
    ]


def view_line(view: InstanceView) -> str:
    """``alpha: running (GET /ready: 200), pid 4242, port 43001``: where an instance stands now."""
    status = view.status or "not provisioned"
    if view.status_detail:
        status = f"{status} ({view.status_detail})"
    parts = [printable(f"{view.name}: {status}")]
    if view.pid:
        parts.append(f"pid {view.pid}")
    if view.port:
        parts.append(f"port {view.port}")
    line = ", ".join(parts)
    if view.last_error and view.status == "error":
        line += f"\n  last error: {printable(view.last_error)}"
    if view.note:
        line += f"\n  note: {printable(view.note)}"
    return line


def event_line(event: Event) -> str:
    when = event.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    parts = [when, event.event]
    if event.instance:
        parts.append(event.instance)
    if event.from_status or event.to_status:
        parts.append(f"{event.from_status or '?'} → {event.to_status or '?'}")
    if event.pid:
        parts.append(f"pid {event.pid}")
    if event.detail:
        parts.append(event.detail)
    return printable("  ".join(parts))


def reload_lines(result: ReloadResult) -> list[str]:
    if not result.ok:
        if len(result.problems) > 1:
            return ["reload rejected, nothing changed:", *(f"  - {printable(p)}" for p in result.problems)]
        return [f"reload rejected, nothing changed: {printable(result.error)}"]
    if result.dry_run:
        return plan_lines(result)
    lines = [f"reloaded in {result.seconds * 1000:.0f} ms"]
    for label, names in (
        ("added", result.added),
        ("removed", result.removed),
        ("restarted", result.restarted),
        ("updated live", result.updated),
    ):
        if names:
            lines.append(f"  {label}: {printable(', '.join(names))}")
    lines.append(f"  unchanged: {len(result.unchanged)}")
    lines.extend(f"  cannot run: {printable(p)}" for p in result.problems)
    lines.extend(f"  warning: {printable(w)}" for w in result.warnings)
    return lines


def plan_lines(plan: ReloadResult) -> list[str]:
    """A reload's plan (``reload --dry-run``), in the words of what it would do."""
    lines = ["plan (nothing applied):"]
    for label, names in (
        ("would add", plan.added),
        ("would remove (directories to the trash)", plan.removed),
        ("would restart", plan.restarted),
        ("would update live", plan.updated),
    ):
        if names:
            lines.append(f"  {label}: {', '.join(names)}")
    if not (plan.added or plan.removed or plan.restarted or plan.updated):
        lines.append("  no changes")
    lines.append(f"  unchanged: {len(plan.unchanged)}")
    lines.extend(f"  would not start: {printable(p)}" for p in plan.problems)
    lines.extend(f"  warning: {printable(w)}" for w in plan.warnings)
    return lines


def status_lines(status: DaemonStatus) -> list[str]:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status.instances.items())) or "no instances"
    lines = [
        f"eyried {printable(status.version)}, pid {status.pid}, up {duration(status.uptime_seconds)}",
        f"home:        {printable(status.home)}",
        f"fleet file:  {printable(status.fleet_file)}",
        f"instances:   {printable(counts)}",
        f"agent API:   {printable(status.agent_api) or 'off'}",
    ]
    if status.sandbox:
        confined = ", ".join(f"{n} {how}" for how, n in sorted(status.sandbox.items()))
        lines.append(f"sandbox:     {printable(confined)}")
    if status.last_reload is not None:
        last = status.last_reload
        when = last.at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if last.at else "?"
        outcome = "ok" if last.ok else f"rejected: {printable(last.error)}"
        lines.append(f"last reload: {when} {outcome}")
    if status.problems:
        lines.append("problems:")
        lines.extend(f"  - {printable(p)}" for p in status.problems)
    return lines
