"""Lifecycle events: every transition becomes one, for the log and for the control API's event stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from supervisor.models import LeanModel

__all__ = ["Event"]


class Event(LeanModel):
    """One lifecycle event, sent on the event stream as one JSON object."""

    id: str = ""  # "<daemon start>-<sequence>", set when the daemon publishes it; SSE's id for resuming
    time: datetime
    event: str  # "transition", "health", "reload", "daemon"
    instance: str = ""
    instance_id: str = ""
    framework: str = ""
    pid: int | None = None
    from_status: str = ""
    to_status: str = ""
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
