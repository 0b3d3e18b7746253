"""eyried switches pydantic's plugin scan off for itself only: its agents, and the image a re-exec starts,
get the environment the operator gave the daemon."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests._daemon import embedded, fleet_yaml, running_daemon, wait_for

SWITCH = "PYDANTIC_DISABLE_PLUGINS"


def _environ(pid: int) -> dict[str, str]:
    return dict(psutil.Process(pid).environ())


class TestDaemonOnlyEnvironment:
    def test_agents_and_a_reexecuted_image_do_not_inherit_the_switch(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Unset by the operator: an agent's environment lacks it, before and after a re-exec, and the new
        image is executed without it (it sets it again for itself)."""
        monkeypatch.delenv(SWITCH, raising=False)
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            pid = d.wait_running("alpha")["alpha"]
            assert SWITCH not in _environ(pid)
            d.signal(signal.SIGUSR2)
            assert d.proc is not None
            daemon_pid = d.proc.pid
            wait_for(lambda: "EYRIED_REEXEC_AT" in _environ(daemon_pid), 30, "the re-executed image")
            assert SWITCH not in _environ(daemon_pid)
            os.kill(pid, signal.SIGKILL)
            renewed = d.wait_new_pid("alpha", pid, 30)
            assert SWITCH not in _environ(renewed["pid"])

    def test_the_operators_own_setting_reaches_the_agents(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Set by the operator: the agents inherit it as given."""
        monkeypatch.setenv(SWITCH, "logfire")
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            pid = d.wait_running("alpha")["alpha"]
            assert _environ(pid)[SWITCH] == "logfire"
