"""What a client says when no eyried serves a home: how to start one, by hand and as the home's service."""

from __future__ import annotations

import os
import shlex

from supervisor.errors import DaemonNotRunning, EyrieError
from supervisor.paths import Home
from supervisor.systemd.names import unit_name

__all__ = ["daemon_not_running"]


def daemon_not_running(home: Home) -> DaemonNotRunning:
    try:
        service = f" or `systemctl --user start {shlex.quote(unit_name(home.root, os.environ))}`"
    except EyrieError:  # a home too long for a unit name has none
        service = ""
    return DaemonNotRunning(
        f"eyried is not running for {home.root}; start it with `eyried --home {home.root}`{service}"
    )
