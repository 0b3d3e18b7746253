"""A daemon that adopted its fleet and sits idle has not imported what only rare work needs: the start-up
that adoption waits on (and the daemon's memory) does without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests._cli import eyriectl
from tests._daemon import DaemonProcess, embedded, fleet_yaml, wait_for

LAZY = frozenset({"psutil", "jinja2", "pygments", "httpx", "tomlkit", "prometheus_client"})
"""For naming a port's holder, templates, rich tracebacks, the CLI's HTTP client, TOML edits, metrics."""


def _imported(output: str) -> set[str]:
    """Top-level names of the modules ``-X importtime`` reported in ``output``."""
    names = set()
    for line in output.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def _fleet_ready(home: Path) -> list[dict[str, Any]]:
    result = eyriectl(home, "events", "--json", "-n", "1000")
    if result.returncode != 0:
        return []
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [e for e in events if e["event"] == "daemon" and e["detail"] == "fleet ready"]


def _sampled(home: Path) -> set[str]:
    result = eyriectl(home, "ps", "--json")
    if result.returncode != 0:
        return set()
    return {view["name"] for view in json.loads(result.stdout) if view.get("memory_bytes")}


def test_an_idle_daemon_after_an_adoption_has_not_imported_the_lazy_modules(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.write_fleet(fleet_yaml(embedded("alpha"), embedded("beta")))
    traced = {"PYTHONPROFILEIMPORTTIME": "1"}
    try:
        daemon.start(env=traced)
        daemon.wait_serving()
        pids = daemon.wait_running("alpha", "beta")
        daemon.kill()
        before = len(daemon.log())
        daemon.start(env=traced)
        daemon.wait_serving()
        ready = wait_for(lambda: _fleet_ready(tmp_path), 20, "the new daemon's fleet ready event")
        assert ready[0]["data"]["adopted"] == 2
        # a liveness probe and a resource sample of each have run (health every 500 ms here)
        wait_for(lambda: _sampled(tmp_path) == {"alpha", "beta"}, 20, "a resource sample of each instance")
        assert daemon.wait_running("alpha", "beta") == pids
        imported = _imported(daemon.log()[before:])
        assert "supervisor" in imported  # the trace is there
        assert imported & LAZY == set()
    finally:
        daemon.close()
