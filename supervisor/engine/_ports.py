"""Which process listens on a port, as the engine asks it: by pid, so it can read that process's marker."""

from __future__ import annotations

from supervisor.ports import holder_pid

__all__ = ["holder_pid"]
