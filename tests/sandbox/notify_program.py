"""A tiny ``Type=notify`` service built on `supervisor.systemd.notify`, for tests against a real manager.

Writes its argv and pid to ``--record`` (one JSON line per start), reports ``STATUS=serving`` and
``READY=1``, feeds the watchdog from its event loop and counts the pings in ``--record``.pings. With
``--stall-after N`` it blocks its event loop after N pings, as a hung daemon would. SIGHUP: ``RELOADING=1``,
``STATUS=reloaded``, ``READY=1``. SIGTERM: ``STOPPING=1``, exit 0. Given ``-- --home DIR`` (as a unit
rendered for eyried passes it), it holds that home's daemon lock and pid file the way eyried does.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

import anyio

from supervisor.paths import Home
from supervisor.systemd.notify import Notifier, watchdog_loop


class CountingNotifier(Notifier):
    """Records each watchdog ping so the test can see the loop turning."""

    def __init__(self, pings_file: Path) -> None:
        env = os.environ
        super().__init__(
            env.get("NOTIFY_SOCKET") or None,
            watchdog_usec=env.get("WATCHDOG_USEC", ""),
            watchdog_pid=env.get("WATCHDOG_PID", ""),
        )
        self.pings_file = pings_file
        self.pings = 0
        self.pinged = anyio.Event()

    def watchdog(self) -> bool:
        sent = super().watchdog()
        self.pings += 1
        self.pings_file.write_text(f"{os.getpid()} {self.pings}\n")
        self.pinged.set()
        self.pinged = anyio.Event()
        return sent


async def stall_after(notifier: CountingNotifier, pings: int) -> None:
    while notifier.pings < pings:
        await notifier.pinged.wait()
    time.sleep(3600)  # noqa: ASYNC251 - the event loop is stuck on purpose: no more pings


def hold_daemon_lock(rest: list[str]) -> None:
    if "--home" not in rest:
        return
    home = Home(Path(rest[rest.index("--home") + 1]))
    home.ensure_run_dir()
    fd = os.open(home.daemon_lock, os.O_RDWR | os.O_CREAT, 0o600)  # held until exit
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    home.pid_file.write_text(f"{os.getpid()}\n")


async def main(record: Path, stall: int | None) -> None:
    with record.open("a") as f:
        f.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:]}) + "\n")
    notifier = CountingNotifier(record.with_name(record.name + ".pings"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(watchdog_loop, notifier)
        if stall is not None:
            tg.start_soon(stall_after, notifier, stall)
        notifier.status("serving")
        notifier.ready()
        with anyio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    notifier.reloading()
                    notifier.status("reloaded")
                    notifier.ready()
                else:
                    notifier.stopping()
                    tg.cancel_scope.cancel()
                    return


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--stall-after", type=int, default=None)
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args()
    hold_daemon_lock(args.rest)
    anyio.run(main, args.record, args.stall_after)
