"""A port held by a stranger at start: the instance moves to a free port (config re-rendered, instance.json
updated, the holder named in the log) instead of crash-looping; ``on_conflict: fail`` and ``pin_port`` keep it
where it is, failing with the holder named."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests._daemon import DaemonProcess, embedded, fleet_yaml, running_daemon, wait_for


@contextlib.contextmanager
def squatting(port: int) -> Iterator[None]:
    """A stranger (this test process) listening on ``port`` for the block."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def _health(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
        return int(resp.status)


def _stopped_with_port(d: DaemonProcess, name: str) -> int:
    """Run ``name`` once, stop the daemon (and with it the agent), and return the port it had."""
    d.wait_running(name)
    port = int(d.instance(name)["port"])
    assert d.terminate() == 0
    return port


class TestPortConflict:
    def test_a_held_port_moves_the_instance(self, tmp_path: Path) -> None:
        """The agent's port is taken while eyried is down: at start it runs on a new port, its config and
        instance.json say so, and the log names the holder (it used to crash-loop on "port N is held")."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"))) as d:
            old = _stopped_with_port(d, "alpha")
            with squatting(old):
                d.start()
                d.wait_serving()
                d.wait_running("alpha")
                inst = d.instance("alpha")
                new = int(inst["port"])
                assert new != old and 43000 <= new <= 43999
                assert json.loads(Path(inst["config_path"]).read_text())["port"] == new
                assert _health(new) == 200
                log = wait_for(lambda: d.log() if "port_moved" in d.log() else "", what="port_moved logged")
                assert f"pid {os.getpid()}" in log and str(old) in log
                assert inst.get("last_error") in (None, "")

    def test_on_conflict_fail_keeps_the_port(self, tmp_path: Path) -> None:
        """With ``daemon.ports.on_conflict: fail`` the start fails naming the holder; the port stays."""
        fleet = "daemon:\n  ports: {on_conflict: fail}\n" + fleet_yaml(embedded("alpha"))
        self._fails_in_place(tmp_path, fleet)

    def test_pin_port_keeps_the_port(self, tmp_path: Path) -> None:
        """An instance with ``pin_port: true`` is not moved: its start fails naming the holder."""
        self._fails_in_place(tmp_path, fleet_yaml(embedded("alpha", "pin_port: true")))

    @staticmethod
    def _fails_in_place(home: Path, fleet: str) -> None:
        with running_daemon(home, fleet) as d:
            old = _stopped_with_port(d, "alpha")
            with squatting(old):
                d.start()
                d.wait_serving()

                def failed() -> dict[str, object]:
                    inst = d.instance("alpha")
                    return inst if "is held by" in str(inst.get("last_error") or "") else {}

                inst = wait_for(failed, what="a start failure naming the holder")
                assert f"port {old} is held by pid {os.getpid()}" in str(inst["last_error"])
                assert inst["port"] == old
