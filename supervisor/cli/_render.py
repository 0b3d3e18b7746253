"""How ``eyriectl`` shows a person events, reload results and instance lines (the ps table and the daemon
status are in `supervisor.cli._plain`, which the quick commands load alone).

Pure formatting; ``--json`` output bypasses this module entirely (JSON escapes control characters itself).
Every value shown here may come from a process (its name in ``/proc``) or a hand-edited file, so each
passes through `printable` on its way out: no value can send a terminal escape sequence, move the cursor
or fake a line of output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from supervisor.cli._plain import duration, printable
from supervisor.control.schema import Event, InstanceView, ReloadResult

__all__ = [
    "dumps",
    "duration",
    "event_line",
    "plan_lines",
    "printable",
    "reload_lines",
    "view_line",
]


def dumps(data: BaseModel | Sequence[BaseModel] | Any) -> str:
    """JSON for ``--json``: models dumped with their JSON keys, lists as lists."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list | tuple):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    return json.dumps(data, indent=2)


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
    if view.last_error and (view.status == "error" or view.phase == "backoff"):
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
