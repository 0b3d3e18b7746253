"""sd_notify without libsystemd: tell the service manager about readiness, reloads, status and liveness.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket) to a ``Type=notify``
service, and ``WATCHDOG_USEC``/``WATCHDOG_PID`` when ``WatchdogSec=`` is set. Messages are newline-separated
``KEY=value`` datagrams (sd_notify(3)). Without ``NOTIFY_SOCKET`` every call is a no-op, so the daemon runs
the same in the foreground. The watchdog is fed from the event loop itself (`watchdog_loop`): a loop that
stops turning stops the pings, and systemd restarts the daemon.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import anyio

from supervisor.errors import NotifySocketError

__all__ = ["Notifier", "NotifySocketError", "watchdog_loop"]


class Notifier:
    """Sends notifications to the socket named by ``NOTIFY_SOCKET``; does nothing when there is none.

    Sending never blocks and never raises: a lost notification must not take the daemon down, so each call
    returns whether the message went out.
    """

    def __init__(self, address: str | None, *, watchdog_usec: str = "", watchdog_pid: str = "") -> None:
        if address is not None and not (address.startswith("/") or address.startswith("@")):
            raise NotifySocketError(
                f"NOTIFY_SOCKET={address!r} is not supported: expected an absolute path or @abstract-name"
            )
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for what systemd passed in ``env`` (default: this process's environment)."""
        source = os.environ if env is None else env
        return cls(
            source.get("NOTIFY_SOCKET") or None,
            watchdog_usec=source.get("WATCHDOG_USEC", ""),
            watchdog_pid=source.get("WATCHDOG_PID", ""),
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False when disabled or the manager did not take it."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            # One socket per message, as sd_notify does: nothing to hold open or leak across a re-exec.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto("\n".join(assignments).encode(), target)
        except OSError:
            return False
        return True

    def ready(self) -> bool:
        return self.send("READY=1")

    def reloading(self) -> bool:
        """``RELOADING=1`` plus the ``MONOTONIC_USEC`` systemd ≥ 253 requires; send `ready` when done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        """One line of free text for ``systemctl status``; control characters become spaces."""
        line = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)
        return self.send(f"STATUS={line}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of ``WATCHDOG_USEC``), or None when the watchdog is not for us."""
        if self.address is None or not self._watchdog_usec:
            return None
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 2 / 1_000_000 if usec > 0 else None


async def watchdog_loop(notifier: Notifier) -> None:
    """Ping the watchdog from the event loop at `Notifier.watchdog_interval` until cancelled.

    Returns at once when there is no watchdog to feed.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await anyio.sleep(interval)
