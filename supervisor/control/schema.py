"""The control API's data: what the daemon serves and ``eyriectl`` reads. Plain models, no I/O.

A start validates none of them but `ReloadResult`, which lives apart (`supervisor.control._reload`) so that a
start does not load the others; they build their validators on first use (``defer_build``), after the fleet
has started."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from supervisor.control._reload import ReloadResult
from supervisor.engine.events import Event
from supervisor.models import HierarchyRole, LastExit, LeanModel

if TYPE_CHECKING:
    from supervisor.fleet import InstanceDecl

__all__ = [
    "AddRequest",
    "DaemonStatus",
    "Event",
    "Flag",
    "InstanceDetail",
    "InstanceView",
    "ProbeState",
    "ProcessRow",
    "ReloadResult",
]

Flag = Literal["DRIFT", "MISSING", "ORPHAN", "DISABLED"]
"""DRIFT: the running process was started from a config that differs from the fleet file now.
MISSING: declared in the fleet file, not provisioned. ORPHAN: provisioned or running, not declared.
DISABLED: running now, will not come back after a reboot (autostart false)."""


class InstanceView(LeanModel):
    """One row of ``eyriectl ps --json``: the instance JSON keys (no secrets) plus derived fields."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str
    id: str = ""
    framework: str = ""
    hierarchy_role: HierarchyRole = HierarchyRole.STANDALONE
    project_id: str = ""
    status: str = ""
    status_detail: str = ""
    phase: str = ""
    health_status: str = ""
    pid: int | None = None
    port: int = 0
    restart_count: int = 0
    total_restarts: int = 0
    uptime_seconds: float | None = None
    autostart: bool = True
    desired: str | None = None
    last_error: str = ""
    note: str = ""
    """The agent's own latest note, posted through the agent API."""
    sandbox: str = ""
    flags: list[Flag] = Field(default_factory=list)
    cpu_percent: float | None = None
    """Percent of one core used by the whole process tree over the last sample interval."""
    memory_bytes: int | None = None
    """Resident memory (RSS) summed over the process tree."""
    cpu_seconds: float | None = None
    """User and system CPU time of the live tree."""
    processes: int | None = None
    """Processes in the tree."""


class AddRequest(BaseModel):
    """``POST /instances``: declare an instance in the fleet file, provision it, maybe start it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str
    framework: str = "embedded"
    role: HierarchyRole = HierarchyRole.STANDALONE
    persona: str = ""
    project: str = ""
    parent: str = ""
    model: str = ""
    created_by: str = ""
    """The id of the agent asking, when the agent API adds it; empty for a person."""
    enable: bool = True
    start: bool = True

    def declaration(self) -> InstanceDecl:
        """The fleet-file entry this request adds: ``enable`` is its autostart; ``start`` is not declared."""
        from supervisor.fleet import InstanceDecl  # the fleet schema loads only where an instance is added

        return InstanceDecl(
            name=self.name,
            framework=self.framework,
            role=self.role,
            persona=self.persona,
            project=self.project,
            parent=self.parent,
            model=self.model,
            created_by=self.created_by,
            autostart=self.enable,
        )


class DaemonStatus(BaseModel):
    model_config = ConfigDict(defer_build=True)

    pid: int
    version: str
    home: str
    fleet_file: str
    started_at: datetime
    uptime_seconds: float
    instances: dict[str, int] = Field(default_factory=dict)  # status → count
    agent_api: str = ""
    """The agent API's URL, the agents' ``EYRIE_URL``; empty when it is off."""
    sandbox: dict[str, int] = Field(default_factory=dict)  # running processes: confinement → count
    last_reload: ReloadResult | None = None
    problems: list[str] = Field(default_factory=list)  # corrupt instance files, invalid fleet file, …
    not_as_desired: list[InstanceView] = Field(default_factory=list)
    """The instances in error or meant to run and not running (`supervisor.control._desired`), as listed:
    ``eyriectl status`` judges "degraded" from them without asking for the whole listing."""


class ProcessRow(BaseModel):
    """One process of the instance's tree at the last resource sample."""

    model_config = ConfigDict(defer_build=True)

    pid: int
    ppid: int
    command: str = ""
    cpu_percent: float | None = None
    rss_bytes: int = 0
    pss_bytes: int | None = None
    """Proportional set size (shared pages divided among their users), read for this answer only."""


class ProbeState(BaseModel):
    """A readiness or liveness probe, and what it found last."""

    model_config = ConfigDict(defer_build=True)

    role: str  # "readiness" or "liveness"
    kind: str
    target: str  # what it checks: "GET /health → 200", "tcp :43001", a command, a pattern
    interval: float | None = None  # seconds between liveness checks (None for readiness)
    ok: bool | None = None  # None: it has not run during this process's life
    detail: str = ""
    at: datetime | None = None


class InstanceDetail(BaseModel):
    """What ``eyriectl status NAME`` shows."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str
    id: str = ""
    framework: str = ""
    status: str = ""
    status_detail: str = ""
    phase: str = ""
    since: datetime | None = None
    """When the status last changed."""
    desired: str | None = None
    health_status: str = ""
    pid: int | None = None
    port: int = 0
    uptime_seconds: float | None = None
    processes: list[ProcessRow] = Field(default_factory=list)
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    cpu_seconds: float | None = None
    max_memory: int | None = None
    memory_grace: int | None = None
    restart_count: int = 0
    total_restarts: int = 0
    next_start_at: datetime | None = None
    last_exit: LastExit | None = None
    last_error: str = ""
    probes: list[ProbeState] = Field(default_factory=list)
    config_path: str = ""
    log_path: str = ""
    log_lines: list[str] = Field(default_factory=list)
    """The last lines of the instance's log, as written (the CLI escapes them when it prints)."""
    flags: list[str] = Field(default_factory=list)
