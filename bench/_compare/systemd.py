"""The systemd anchor: a ``systemd --user`` manager in the tests' sandbox (a private cgroup, its own session
and ``XDG_RUNTIME_DIR``: see DESIGN.md), with a template unit started as N instances. Its children are the
units' main processes."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.sandbox.systemd import UserManager, unavailable_reason, user_manager

__all__ = ["UNIT", "Systemd", "unavailable_reason"]

UNIT = """\
[Unit]
Description=benchmark sleeper %i
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sleep infinity
Restart=always
RestartSec=0
"""
"""``RestartSec=0``: systemd's default is 100 ms; 0 is its floor. ``StartLimitIntervalSec=0``: the
respawn samples would otherwise trip the start rate limit."""


class Systemd:
    """The manager runs from construction to `close`; `launch` is ``systemctl --user start sleeper@…``."""

    name = "systemd"

    def __init__(self, root: Path, n: int, marker: str) -> None:
        self.n = n
        self._stack = contextlib.ExitStack()
        self.manager: UserManager = self._stack.enter_context(
            user_manager(root, extra_env={"EYRIE_BENCH_RUN": marker})
        )
        self.manager.write_unit("sleeper@.service", UNIT)
        self.manager.systemctl("daemon-reload")

    @property
    def units(self) -> list[str]:
        return [f"sleeper@{i}.service" for i in range(1, self.n + 1)]

    @property
    def pid(self) -> int:
        return self.manager.pid

    def launch(self) -> int:
        self.manager.systemctl("start", *self.units, timeout=300)
        return self.manager.pid

    def stop_fleet(self) -> None:
        self.manager.systemctl("stop", "sleeper@*", timeout=300)

    def log_tail(self) -> str:
        return self.manager.log_tail()

    def close(self) -> None:
        self._stack.close()
