"""A port held by a stranger at start: the instance moves to a free port (config re-rendered, instance.json
updated, the holder named in the log) instead of crash-looping; ``on_conflict: fail`` and ``pin_port`` keep it
where it is, failing with the holder named."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.engine import InstanceRuntime
from supervisor.errors import FleetFileError, ProvisionError
from supervisor.fleet import FleetFile, load_fleet
from supervisor.models import Instance, InstanceStatus
from supervisor.paths import Home
from supervisor.ports import PortRange, port_in_use
from supervisor.store import Store
from supervisor.testing import EventRecorder, fast_restart, faulty, free_port, make_runtime, running_engine
from supervisor.testing import wait_for as wait_async
from tests._daemon import DaemonProcess, embedded, fleet_yaml, running_daemon, wait_for

NEVER = fast_restart(policy="never")


@contextlib.contextmanager
def squatting(port: int = 0) -> Iterator[int]:
    """A stranger (this test process) listening on ``port`` for the block."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock.getsockname()[1]


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


class TestEngineRelocation:
    pytestmark = pytest.mark.anyio

    async def test_the_relocators_runtime_is_started_and_announced(self, home: Home) -> None:
        """The engine hands a held port to its relocator, starts the runtime it returns, and emits a
        ``port_moved`` event naming the holder."""
        store = Store(home)
        new_port = free_port()
        holders: list[str] = []

        async def relocate(rt: InstanceRuntime, holder: str) -> InstanceRuntime:
            holders.append(holder)

            def moved(i: Instance) -> None:
                i.port = new_port

            store.update(rt.instance_id, moved)
            return dataclasses.replace(rt, port=new_port)

        events = EventRecorder()
        with squatting() as held:
            rt = make_runtime(
                store, "mover", faulty("--tcp"), port=held, restart=fast_restart(policy="never")
            )
            async with running_engine(store, on_event=events, relocate=relocate) as engine:
                await engine.add(rt)
                inst = await engine.start(rt.instance_id, wait=True)
                assert inst.status is InstanceStatus.RUNNING and inst.port == new_port
                assert store.get(rt.instance_id).port == new_port
                await wait_async(lambda: port_in_use(new_port))
        assert holders and holders[0].startswith(f"pid {os.getpid()} (")
        [moved] = events.of(rt.instance_id, "port_moved")
        assert moved.data["old_port"] == held and moved.data["port"] == new_port
        assert moved.data["holder"] == holders[0]

    async def test_a_failed_move_names_holder_and_reason(self, home: Home) -> None:
        """A relocator that fails leaves the start failed with the holder and the reason in last_error."""
        store = Store(home)

        async def relocate(rt: InstanceRuntime, holder: str) -> InstanceRuntime:
            raise ProvisionError("no free port in 43000-43000")

        with squatting() as held:
            rt = make_runtime(
                store, "stuck", faulty("--tcp"), port=held, restart=fast_restart(policy="never")
            )
            async with running_engine(store, relocate=relocate) as engine:
                await engine.add(rt)
                await wait_async(lambda: engine.get(rt.instance_id).status is InstanceStatus.ERROR)
                error = engine.get(rt.instance_id).last_error or ""
        assert error.startswith(f"port {held} is held by pid {os.getpid()} (")
        assert error.endswith("and moving to another port failed: no free port in 43000-43000")


class TestSettings:
    def test_defaults(self, tmp_path: Path) -> None:
        """Without ``daemon.ports``: 43000-43999, moving on conflict; no instance is pinned."""
        fleet = load_fleet_text(tmp_path, fleet_yaml(embedded("alpha")))
        assert fleet.daemon.ports.span() == PortRange(43000, 43999)
        assert fleet.daemon.ports.on_conflict == "move"
        assert fleet.decl("alpha").pin_port is False

    def test_range_conflict_policy_and_pin(self, tmp_path: Path) -> None:
        """The range, ``on_conflict: fail`` and ``pin_port`` are read from the file."""
        text = "daemon:\n  ports: {first: 50000, last: 50099, on_conflict: fail}\n" + fleet_yaml(
            embedded("alpha", "pin_port: true")
        )
        fleet = load_fleet_text(tmp_path, text)
        assert fleet.daemon.ports.span() == PortRange(50000, 50099)
        assert fleet.daemon.ports.on_conflict == "fail"
        assert fleet.decl("alpha").pin_port is True

    def test_bad_values_are_refused_with_their_key(self, tmp_path: Path) -> None:
        """A reversed range, a privileged port, an unknown policy are refused naming the key."""
        for ports, where in (
            ("{first: 43100, last: 43000}", "first (43100) is above last (43000)"),
            ("{first: 80}", "daemon.ports.first"),
            ("{on_conflict: steal}", "daemon.ports.on_conflict"),
        ):
            text = f"daemon:\n  ports: {ports}\n" + fleet_yaml()
            with pytest.raises(FleetFileError, match=re.escape(where)):
                load_fleet_text(tmp_path, text)


def load_fleet_text(tmp_path: Path, text: str) -> FleetFile:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return load_fleet(path)
