"""The fields of an instance's row that ``eyriectl ps`` reads: its table's cells, its notes and its
``--project`` filter. ``GET /v1/instances?view=ps`` sends only these.

At N = 1000 the whole rows are 1.1 MB: the daemon wrote them to the socket a piece per turn of its event loop
(a crash storm's turns are long) and ``eyriectl ps`` parsed them all to show a fifth of the bytes. Imported
by the CLI's quick path, so it imports nothing.
"""

from __future__ import annotations

__all__ = ["PS_FIELDS", "PS_VIEW"]

PS_VIEW = "ps"
"""The value of ``view`` that asks for these fields only."""

PS_FIELDS = frozenset(
    {
        "name",
        "framework",
        "hierarchy_role",
        "project_id",
        "status",
        "status_detail",
        "phase",
        "health_status",
        "pid",
        "port",
        "restart_count",
        "uptime_seconds",
        "last_error",
        "sandbox",
        "flags",
        "cpu_percent",
        "memory_bytes",
    }
)
"""Every key `supervisor.cli._plain` reads to print the table and its notes, and the filter by project."""
