"""An ``instance.json`` saved by eyrie's Go code: Go keeps only the keys its ``Instance`` struct knows.

What eyried does with such a record is in docs/layout.md ("When eyrie's Go code saves an instance"): a record
without ``boot_id`` cannot prove its process is this boot's, so the process is not adopted; what carries the
instance's marker is ended and the instance starts again as autostart says, with the supervisor's keys
written back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests._cli import eyriectl
from tests._daemon import DaemonProcess, embedded, fleet_yaml, pid_alive, running_daemon, wait_for

GO_KEYS = (
    "id",
    "name",
    "display_name",
    "framework",
    "persona_id",
    "hierarchy_role",
    "project_id",
    "parent_id",
    "port",
    "config_path",
    "workspace_path",
    "status",
    "status_updated_at",
    "pid",
    "last_seen",
    "health_status",
    "restart_count",
    "created_at",
    "created_by",
)
"""The JSON keys of eyrie's ``instance.Instance`` (``auth_token`` is ``json:"-"``)."""

_ZERO_TIME = "0001-01-01T00:00:00Z"


def save_as_go(home: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the instance's ``instance.json`` as Go's ``json.Marshal`` of its struct would: its keys only,
    omitempty ones left out when empty, zero times spelled out."""
    saved = {key: record[key] for key in GO_KEYS if key in record}
    saved.setdefault("status_updated_at", _ZERO_TIME)
    saved.setdefault("last_seen", _ZERO_TIME)
    path = home / "instances" / record["id"] / "instance.json"
    path.write_text(json.dumps(saved, indent=2))
    return saved


def _restart_eyried(d: DaemonProcess) -> None:
    d.start()
    d.wait_serving()


class TestGoSavedRecord:
    def test_running_instance_is_not_adopted_but_replaced(self, tmp_path: Path) -> None:
        """A running instance whose record Go saved (no boot_id, pgid, launch_hash …): at eyried's next start
        its process is ended, not adopted, and a new one runs; the supervisor's keys are back."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            old = d.wait_running("alpha")["alpha"]
            d.kill()  # agents outlive a killed daemon
            assert pid_alive(old)
            saved = save_as_go(tmp_path, d.instance("alpha"))
            assert "boot_id" not in saved and saved["status"] == "running" and saved["pid"] == old

            _restart_eyried(d)
            wait_for(lambda: not pid_alive(old), 20, "the unprovable process to be ended")
            record = d.wait_new_pid("alpha", old)
            assert record["restart_count"] == 0
            for key in ("boot_id", "pgid", "proc_start_time", "launch_hash", "desired"):
                assert record.get(key), key

    def test_operator_stop_is_forgotten(self, tmp_path: Path) -> None:
        """Go drops ``desired``: an instance an operator stopped comes back up at eyried's next start when
        its autostart is on."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            d.wait_running("alpha")
            assert eyriectl(tmp_path, "stop", "alpha", "--wait").returncode == 0
            assert d.instance("alpha")["desired"] == "stopped"
            d.terminate()
            save_as_go(tmp_path, d.instance("alpha"))

            _restart_eyried(d)
            d.wait_running("alpha")
            assert d.instance("alpha")["desired"] == "running"
