"""A framework defined only in fleet.yaml is provisioned and run by a real eyried, end to end."""

from __future__ import annotations

import json
import socket
import tomllib
from pathlib import Path

from tests._daemon import FAST_DEFAULTS, running_daemon

# A gateway of its own: reads the generic config eyried wrote, serves on the port it names, says so.
NOTES_BOT = (
    "import socket, sys, tomllib; "
    "c = tomllib.load(open(sys.argv[1], 'rb')); "
    "s = socket.create_server((c['host'], c['port'])); "
    "print('listening on %s:%d as %s' % (c['host'], c['port'], c['name']), flush=True); "
    "[s.accept()[0].sendall(c['name'].encode()) for _ in iter(int, 1)]"
)

FLEET = (
    "version: 1\n"
    + FAST_DEFAULTS
    + "frameworks:\n"
    + "  notes-bot:\n"
    + f"    command: {json.dumps(['{python}', '-c', NOTES_BOT, '{config}'])}\n"
    + '    ready: {kind: log, pattern: "listening on .*:{port}"}\n'
    + "    live: {kind: tcp}\n"
    + "    stop_signal: SIGINT\n"
    + "    config_format: toml\n"
    + "    config_file: notes.toml\n"
    + "instances:\n"
    + "  - name: notes\n"
    + "    framework: notes-bot\n"
)


def _greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.recv(64)


class TestFleetFileFramework:
    def test_defined_only_in_the_fleet_file_provisions_and_runs(self, tmp_path: Path) -> None:
        """notes-bot, known only from ``frameworks:``, gets a generic config and runs to ``running``."""
        with running_daemon(tmp_path, FLEET) as d:
            d.wait_running("notes")
            inst = d.instance("notes")
            config = Path(inst["config_path"])
            assert config.name == "notes.toml" and config.parent == tmp_path / "instances" / inst["id"]
            facts = tomllib.loads(config.read_text())
            assert facts["port"] == inst["port"] and facts["name"] == "notes" and facts["token"]
            assert _greeting(inst["port"]) == b"notes"
            assert "unsupported framework" not in d.log()
