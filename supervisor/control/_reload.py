"""What a reload did, or why it changed nothing: the one model of the control API a start validates (its
result), kept apart from `supervisor.control.schema` so that a start loads none of the others."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["ReloadResult"]


class ReloadResult(BaseModel):
    """What a reload did, or why it changed nothing."""

    ok: bool
    error: str = ""
    problems: list[str] = Field(default_factory=list)
    """Rejected: everything found wrong (nothing was applied). Applied: instances that could not be
    provisioned or updated, each ``name: reason`` (they alone are in ``error``; the rest of the fleet is
    applied)."""
    warnings: list[str] = Field(default_factory=list)
    """Applied, but worth an operator's look: a project instances name that ``projects:`` does not list."""
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    restarted: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)  # policy-only changes applied live
    unchanged: list[str] = Field(default_factory=list)
    at: datetime | None = None
    seconds: float = 0.0
    dry_run: bool = False
    """A plan: what a reload would do with the fleet file now; nothing was applied."""
