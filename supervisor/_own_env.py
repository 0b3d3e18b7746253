"""Environment variables ``eyried`` sets for its own process only: no agent, probe or re-executed image
inherits them, so an agent written in Python sees the environment its operator gave the daemon."""

from __future__ import annotations

import os

__all__ = ["DAEMON_ONLY", "set_for_daemon"]

DAEMON_ONLY: set[str] = set()
"""The names `set_for_daemon` set in this process (not those the operator had set already)."""


def set_for_daemon(name: str, value: str) -> None:
    """Set ``name`` in this process's environment unless the operator set it (theirs is kept, and inherited
    as before); a child's environment leaves out what this set."""
    if name not in os.environ:
        os.environ[name] = value
        DAEMON_ONLY.add(name)
