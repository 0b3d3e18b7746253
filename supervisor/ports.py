"""Instance ports: choosing a free one from a range (43000–43999 unless the fleet file says otherwise), and
telling who holds a taken one.

Choosing is only half of the job: two provisionings running at once (threads, or the daemon and ``eyriectl``)
must not pick the same port. `port_reservation` holds the store-wide lock from the choice until the caller
has saved the instance that uses the port, so the next chooser sees it in the store; its ``claim`` callback
(the machine-wide claims of `supervisor.port_claims`) keeps other homes and users off it too. The port is not
held open: something outside the supervisor may still bind it later, and the engine reports that at start
(`port_holder` names the process).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import socket
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from supervisor._fs import locked
from supervisor.errors import PortsExhausted
from supervisor.models import Instance

__all__ = [
    "PORT_RANGE_END",
    "PORT_RANGE_START",
    "InstanceSource",
    "PortRange",
    "allocate_port",
    "first_free_port",
    "holder_pid",
    "port_holder",
    "port_in_use",
    "port_reservation",
]

PORT_RANGE_START = 43000
PORT_RANGE_END = 43999

_IPV4_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class PortRange:
    """The ports instances are given, both ends included."""

    first: int = PORT_RANGE_START
    last: int = PORT_RANGE_END

    def __post_init__(self) -> None:
        if not 1 <= self.first <= self.last <= 65535:
            raise ValueError(f"port range {self.first}-{self.last} must lie in 1-65535, first <= last")

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


_IPV6_LOOPBACK = "::1"


class InstanceSource(Protocol):
    """What a reservation needs of `supervisor.store.Store` (ports and store are independent modules)."""

    def lock(self) -> Path:
        """The store-wide lock file."""
        ...

    def list(self) -> builtins.list[Instance]:
        """Every instance saved so far."""
        ...


def port_in_use(port: int, host: str = _IPV4_LOOPBACK) -> bool:
    """True when some socket is bound to ``port`` on ``host`` (or on the wildcard address).

    Checked by trying to bind, with ``SO_REUSEADDR`` as servers use it: a listener or a bound socket counts;
    connections lingering in TIME_WAIT after a server stopped do not (when that server, like asyncio, Go and
    Node servers, set ``SO_REUSEADDR`` too), since they do not keep the next server from binding.
    For the IPv4 loopback the IPv6 loopback is checked too (where the machine has one), since an agent told
    "localhost" may take either. An address this machine does not have holds nothing, so it reads as free.
    """
    hosts = [host]
    if host == _IPV4_LOOPBACK and socket.has_ipv6:
        hosts.append(_IPV6_LOOPBACK)
    return any(_bound(port, h) for h in hosts)


def _bound(port: int, host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return False  # no IPv6 on this machine: nothing can be bound there
        raise
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def allocate_port(
    existing: Iterable[Instance],
    *,
    host: str = _IPV4_LOOPBACK,
    start: int = PORT_RANGE_START,
    end: int = PORT_RANGE_END,
    claim: Callable[[int], bool] | None = None,
    release: Callable[[int], None] | None = None,
) -> int:
    """The first port in ``start..end`` that no instance in ``existing`` uses, nothing has bound and
    ``claim`` (when given) secures; a claimed port found bound is given back through ``release``.

    Raises `PortsExhausted` naming the range. Call it inside `port_reservation` when the result will be
    saved; on its own it only answers "which port is free right now".
    """
    taken = {inst.port for inst in existing}
    return first_free_port(taken, PortRange(start, end), host=host, claim=claim, release=release)


def first_free_port(
    taken: Collection[int],
    span: PortRange,
    *,
    host: str = _IPV4_LOOPBACK,
    claim: Callable[[int], bool] | None = None,
    release: Callable[[int], None] | None = None,
    passed_over: set[int] | None = None,
) -> int:
    """The first port in ``span`` not in ``taken`` (the store's ports, known to the caller), nothing has
    bound and ``claim`` (when given) secures; a claimed port found bound is given back through ``release``.
    Raises `PortsExhausted` naming the range.

    ``passed_over``: ports found claimed by others or bound are added to it and not tried again, so a batch
    of N new instances beside another fleet's claims tries each of them once rather than N times."""
    skip = passed_over if passed_over is not None else set()
    for port in range(span.first, span.last + 1):
        if port in taken or port in skip:
            continue
        if claim is not None and not claim(port):
            skip.add(port)
            continue
        if not port_in_use(port, host):
            return port
        skip.add(port)
        if release is not None:
            release(port)
    raise PortsExhausted(
        f"no free port in {span}: every port is used by an instance, claimed by another home or bound"
        " by another process"
    )


@contextlib.contextmanager
def port_reservation(
    store: InstanceSource,
    *,
    host: str = _IPV4_LOOPBACK,
    span: PortRange = PortRange(),
    claim: Callable[[int], bool] | None = None,
    release: Callable[[int], None] | None = None,
) -> Iterator[int]:
    """Choose a free port in ``span`` for a new instance and keep it reserved until the block ends.

    The store-wide lock (``Store.lock()``) is held for the whole block, across threads and processes.
    The contract: save the instance that uses the port (``Store.create``/``Store.save``) *inside* the block;
    the next reservation then sees it. Leaving the block without saving frees the port in the store; leaving
    it by an exception also gives back what ``claim`` took (``release``). Do not take the store-wide lock
    again inside the block: ``flock`` would wait for itself.
    """
    with locked(store.lock()):
        port = allocate_port(
            store.list(), host=host, start=span.first, end=span.last, claim=claim, release=release
        )
        try:
            yield port
        except BaseException:
            if release is not None:
                release(port)
            raise


def holder_pid(port: int) -> int | None:
    """The pid listening on ``port`` over TCP (any local address), when it can be seen: the engine reads its
    instance marker to tell its own leftovers from a stranger."""
    return next((pid for pid, listening in _socket_owners(port, "tcp") if listening), None)


def port_holder(port: int) -> str | None:
    """Who holds ``port``: ``"pid 812 (nginx)"``; None when nothing is bound or the owner cannot be seen.

    A listening socket is preferred over other sockets with that local port (e.g. a client's
    ephemeral port).
    """
    import psutil  # only to name who holds a port: the daemon starts without it

    for pid, _ in _socket_owners(port, "inet"):
        try:
            return f"pid {pid} ({psutil.Process(pid).name()})"
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            return f"pid {pid}"
    return None


def _socket_owners(port: int, kind: str) -> list[tuple[int, bool]]:
    """``(pid, listening)`` for every process with a ``kind`` socket on local port ``port``, listeners first,
    then by pid; [] when the sockets cannot be seen."""
    import psutil  # see `port_holder`

    try:
        conns = psutil.net_connections(kind=kind)
    except (psutil.Error, OSError):
        return []
    owners = {
        (conn.pid, conn.status == psutil.CONN_LISTEN)
        for conn in conns
        if conn.pid is not None and conn.laddr and conn.laddr.port == port
    }
    return sorted(owners, key=lambda owner: (not owner[1], owner[0]))
