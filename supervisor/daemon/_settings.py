"""The fleet file's settings of eyried itself that need translating for the parts it composes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor.control.server import TcpSettings

if TYPE_CHECKING:
    from supervisor.fleet import FleetFile
    from supervisor.paths import Home

__all__ = ["tcp_settings"]


def tcp_settings(fleet: FleetFile, home: Home) -> TcpSettings | None:
    """The TCP listener ``fleet`` asks for (read at start: a change takes effect at the next start or
    re-exec)."""
    tcp = fleet.daemon.control_tcp
    if not tcp.enabled:
        return None
    return TcpSettings(port=tcp.port or 0, token_file=tcp.token_path(home.root), host=tcp.host)
