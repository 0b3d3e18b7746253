"""The fleet file's settings of eyried itself that need translating for the parts it composes."""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from supervisor.control.server import TcpSettings, serve

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from supervisor.fleet import FleetFile
    from supervisor.paths import Home

__all__ = ["control_api", "tcp_settings"]


def control_api(app: Starlette, fleet: FleetFile, home: Home) -> functools.partial[Coroutine[Any, Any, None]]:
    """`serve` for ``app`` on the home's operator sockets (the file and the abstract one) and the TCP
    listener ``fleet`` asks for."""
    return functools.partial(
        serve,
        app,
        socket_path=home.socket_path,
        abstract_socket=home.operator_socket,
        tcp=tcp_settings(fleet, home),
    )


def tcp_settings(fleet: FleetFile, home: Home) -> TcpSettings | None:
    """The TCP listener ``fleet`` asks for (read at start: a change takes effect at the next start or
    re-exec)."""
    tcp = fleet.daemon.control_tcp
    if not tcp.enabled:
        return None
    return TcpSettings(port=tcp.port or 0, token_file=tcp.token_path(home.root), host=tcp.host)
