"""When a process exec'd, by the kernel's clock: the proc connector (netlink ``NETLINK_CONNECTOR``,
``CN_IDX_PROC``), whose ``PROC_EVENT_EXEC`` carries the ``CLOCK_MONOTONIC`` time of the exec, so a latency
is ``timestamp_ns - time.monotonic_ns()`` taken before the cause, with no poller's delay in it. Needs root
in the initial namespaces; elsewhere `ExecWatcher` polls the manager's children every millisecond instead and
says so (``kernel_clock`` False).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from bench._compare import procs

__all__ = ["ExecEvent", "ExecWatcher"]

_NETLINK_CONNECTOR = 11
_CN_IDX_PROC = 1
_CN_VAL_PROC = 1
_PROC_CN_MCAST_LISTEN = 1
_NLMSG_DONE = 3
_PROC_EVENT_EXEC = 0x00000002
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_CN_MSG = struct.Struct("=IIIIHH")  # cn_msg: idx, val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # proc_event: what, cpu, timestamp_ns
_EXEC = struct.Struct("=ii")  # exec_proc_event: pid, tgid
_EVENT_AT = _HEADER.size + _CN_MSG.size
_DATA_AT = _EVENT_AT + _EVENT.size
_RCVBUF = 16 * 2**20
_POLL_S = 0.001


@dataclass(frozen=True)
class ExecEvent:
    """One exec: the process, its name after the exec, its parent chain, and when (monotonic ns)."""

    pid: int
    name: str | None
    parents: tuple[int, ...]
    at_ns: int


class ExecWatcher:
    """Collects the exec events of ``sleep`` processes and of this process's own children (a manager it
    launches) from a reader thread; `wait_sleeps` hands them to the measurement that waits for them."""

    def __init__(self) -> None:
        self._events: list[ExecEvent] = []
        self._cond = threading.Condition()
        self._stop = False
        self.overflows = 0
        self.unavailable: str | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        try:
            self._sock = self._open()
        except OSError as exc:
            self.unavailable = f"proc connector unavailable ({exc}): children polled every 1 ms"
        if self._sock is not None:
            self._thread = threading.Thread(target=self._read, name="proc-connector", daemon=True)
            self._thread.start()

    @property
    def kernel_clock(self) -> bool:
        return self._sock is not None

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_CONNECTOR)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, 33, _RCVBUF)  # SO_RCVBUFFORCE (root)
            sock.bind((0, _CN_IDX_PROC))
            body = struct.pack("=I", _PROC_CN_MCAST_LISTEN)
            msg = _CN_MSG.pack(_CN_IDX_PROC, _CN_VAL_PROC, 0, 0, len(body), 0) + body
            sock.send(_HEADER.pack(_HEADER.size + len(msg), _NLMSG_DONE, 0, 0, 0) + msg)
        except OSError:
            sock.close()
            raise
        return sock

    def _read(self) -> None:
        assert self._sock is not None
        own = os.getpid()
        while not self._stop:
            ready, _, _ = select.select([self._sock], [], [], 0.2)
            if not ready:
                continue
            try:
                data = self._sock.recv(65536)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overflows += 1
                    continue
                return
            if len(data) < _DATA_AT + _EXEC.size:
                continue
            what, _cpu, at_ns = _EVENT.unpack_from(data, _EVENT_AT)
            if what != _PROC_EVENT_EXEC:
                continue
            pid, tgid = _EXEC.unpack_from(data, _DATA_AT)
            if pid != tgid:
                continue
            name, parents = procs.ancestors(pid)
            if name == "sleep" or (parents and parents[0] == own):
                with self._cond:
                    self._events.append(ExecEvent(pid, name, tuple(parents), at_ns))
                    self._cond.notify_all()

    def mark(self) -> int:
        """A position in the event log: `wait_sleeps` looks only at events after it."""
        with self._cond:
            return len(self._events)

    def exec_of(self, pid: int, timeout: float = 5.0) -> int | None:
        """When this process's child ``pid`` exec'd (ns), or None (no connector, or not seen)."""
        if not self.kernel_clock:
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events:
                    if event.pid == pid:
                        return event.at_ns
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_sleeps(
        self, manager: int, count: int, since: int, exclude: set[int], timeout: float
    ) -> list[ExecEvent]:
        """The first ``count`` execs of ``sleep`` under ``manager`` after mark ``since`` (pids in ``exclude``
        left out), in order; fewer when ``timeout`` passes first."""
        if not self.kernel_clock:
            return self._poll_sleeps(manager, count, exclude, timeout)
        deadline = time.monotonic() + timeout
        found: dict[int, ExecEvent] = {}
        with self._cond:
            position = since
            while True:
                for event in self._events[position:]:
                    if manager in event.parents and event.pid not in exclude and event.pid not in found:
                        found[event.pid] = event
                position = len(self._events)
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return sorted(found.values(), key=lambda e: e.at_ns)[:count]
                self._cond.wait(left)

    @staticmethod
    def _poll_sleeps(manager: int, count: int, exclude: set[int], timeout: float) -> list[ExecEvent]:
        deadline = time.monotonic() + timeout
        found: dict[int, ExecEvent] = {}
        while len(found) < count and time.monotonic() < deadline:
            now = time.monotonic_ns()
            for pid in procs.sleep_children(manager) - exclude - found.keys():
                found[pid] = ExecEvent(pid, "sleep", (manager,), now)
            time.sleep(_POLL_S)
        return sorted(found.values(), key=lambda e: e.at_ns)[:count]

    def close(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(1)
        if self._sock is not None:
            self._sock.close()
