"""Whether an instance is not as desired, judged one way by the daemon (``not_as_desired`` in its status
answer) and by ``eyriectl status`` reading an older daemon's listing: it imports nothing, so the CLI's quick
path can use it."""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["not_as_desired"]


def not_as_desired(status: str, desired: str | None, autostart: bool, flags: Collection[str]) -> bool:
    """In error, or meant to run and not running: desired running, or declared to start at boot and not
    provisioned (MISSING). ``status`` is "" for an instance that is not provisioned."""
    state = status or "not provisioned"
    meant_to_run = desired == "running" or (autostart and "MISSING" in flags)
    return state == "error" or (meant_to_run and state != "running")
