"""The fleet file's settings of eyried itself that need translating for the parts it composes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor.control._listen import ControlSockets, TcpSettings, bind_control

if TYPE_CHECKING:
    from supervisor.fleet import FleetFile
    from supervisor.paths import Home

__all__ = ["bind_control_api", "tcp_settings"]


def bind_control_api(fleet: FleetFile, home: Home) -> ControlSockets:
    """Bind the home's operator sockets (the file and the abstract one) and the TCP listener ``fleet`` asks
    for."""
    return bind_control(home.socket_path, abstract_socket=home.operator_socket, tcp=tcp_settings(fleet, home))


def tcp_settings(fleet: FleetFile, home: Home) -> TcpSettings | None:
    """The TCP listener ``fleet`` asks for (read at start: a change takes effect at the next start or
    re-exec)."""
    tcp = fleet.daemon.control_tcp
    if not tcp.enabled:
        return None
    return TcpSettings(port=tcp.port or 0, token_file=tcp.token_path(home.root), host=tcp.host)
