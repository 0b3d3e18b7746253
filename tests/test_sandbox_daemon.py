"""A real eyried runs its agents confined by default; fleet.yaml turns it off or adds paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from supervisor.sandbox.confine import landlock_abi
from tests._daemon import embedded, fleet_yaml, running_daemon, wait_for

ABI = landlock_abi()


def _status_of(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


@pytest.mark.skipif(ABI == 0, reason="this kernel has no Landlock")
class TestDaemonConfines:
    def test_agents_are_confined_unless_the_fleet_says_off(self, tmp_path: Path) -> None:
        """The default agent runs under Landlock with no_new_privs; ``sandbox: off`` runs as before."""
        fleet = fleet_yaml(embedded("boxed"), embedded("free", "sandbox: off"))
        with running_daemon(tmp_path, fleet) as d:
            pids = d.wait_running("boxed", "free")
            assert d.instance("boxed")["sandbox"] == f"landlock v{ABI}"
            assert d.instance("free")["sandbox"] == "off"
            assert _status_of(pids["boxed"])["NoNewPrivs"] == "1"
            assert _status_of(pids["free"])["NoNewPrivs"] == "0"
            if os.geteuid() == 0:
                assert int(_status_of(pids["boxed"])["CapEff"], 16) == 0
                assert int(_status_of(pids["free"])["CapEff"], 16) != 0

    def test_an_extra_write_path_is_writable(
        self, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """An agent given ``sandbox: {write: [dir]}`` writes there (the directory is made when missing)."""
        outside = tmp_path_factory.mktemp("shared") / "pids"
        command = [
            "{python}",
            "-m",
            "supervisor.testing.faulty_agent",
            "--http",
            "--pid-file",
            str(outside / "pid"),
        ]
        fleet = fleet_yaml(
            embedded(
                "writer", f"command: {json.dumps(command)}\nsandbox: {{write: [{json.dumps(str(outside))}]}}"
            )
        )
        with running_daemon(tmp_path, fleet) as d:
            pid = d.wait_running("writer")["writer"]
            wait_for(lambda: (outside / "pid").exists(), what="the pid file")
            assert int((outside / "pid").read_text()) == pid
