"""Stopping many instances at once: every stop begins together, the stops share their /proc scans, each
instance's desired state is on disk, and ``POST /v1/stop`` answers per name (errors included)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from supervisor.client import ControlClient
from supervisor.control.schema import InstanceView
from supervisor.errors import EyrieError, NotFound
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import faulty, make_runtime, process_gone, running_engine
from tests._cli import eyriectl
from tests._daemon import DaemonProcess, embedded, fleet_yaml, pid_alive, running_daemon

TCP_READY = Probe(kind=ProbeKind.TCP)
FLEET = 8


class TestEngine:
    @pytest.mark.anyio
    async def test_concurrent_stops_share_scans_and_persist_desired(self, home: Home) -> None:
        """Eight stops begun together share their /proc scans (unshared: two each), end every process and
        leave ``desired: stopped`` on disk for each."""
        store = Store(home)
        runtimes = [make_runtime(store, f"many-{i}", faulty("--tcp"), ready=TCP_READY) for i in range(FLEET)]
        async with running_engine(store) as engine:
            for rt in runtimes:
                await engine.add(rt)
            async with anyio.create_task_group() as tg:
                for rt in runtimes:
                    tg.start_soon(functools.partial(engine.start, rt.instance_id, wait=True))
            pids = [engine.get(rt.instance_id).pid or 0 for rt in runtimes]
            assert all(pids)
            scans = engine.scanner.scans
            async with anyio.create_task_group() as tg:
                for rt in runtimes:
                    tg.start_soon(functools.partial(engine.stop, rt.instance_id, wait=True))
            assert engine.scanner.scans - scans <= FLEET + 2  # unshared: two looks per stop
            assert all(process_gone(pid) for pid in pids)
            for rt in runtimes:
                on_disk = store.get(rt.instance_id)
                assert on_disk.desired == "stopped" and on_disk.status is InstanceStatus.STOPPED


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[DaemonProcess]:
    with running_daemon(
        tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"), embedded("gamma"))
    ) as daemon:
        daemon.wait_running("alpha", "beta", "gamma")
        yield daemon


def _stop_many(home: Path, names: list[str]) -> list[InstanceView | EyrieError] | None:
    async def run() -> list[InstanceView | EyrieError] | None:
        async with ControlClient(Home(home)) as client:
            return await client.stop_many(names, wait=True)

    return anyio.run(run)


class TestRoute:
    def test_answers_per_name_in_order_with_errors(self, fleet: DaemonProcess) -> None:
        """One unknown name gets its own NotFound; the others stop, answered in the order asked."""
        pids = {name: fleet.instance(name)["pid"] for name in ("alpha", "beta")}
        answers = _stop_many(fleet.home, ["beta", "nosuch", "alpha"])
        assert answers is not None and len(answers) == 3
        beta, nosuch, alpha = answers
        assert isinstance(nosuch, NotFound) and "nosuch" in str(nosuch)
        assert isinstance(beta, InstanceView) and (beta.name, beta.status) == ("beta", "stopped")
        assert isinstance(alpha, InstanceView) and (alpha.name, alpha.status) == ("alpha", "stopped")
        assert not any(pid_alive(pid) for pid in pids.values())
        assert fleet.instance("gamma")["status"] == "running"

    def test_malformed_body_is_refused(self, fleet: DaemonProcess) -> None:
        """A body without a list of names is a 400 that stops nothing."""

        async def post(body: object) -> httpx.Response:
            transport = httpx.AsyncHTTPTransport(uds=str(Home(fleet.home).socket_path))
            async with httpx.AsyncClient(transport=transport, base_url="http://eyried") as client:
                return await client.post("/v1/stop", json=body)

        bodies: list[object] = [{"names": []}, {"names": "alpha"}, [1], {"names": [1]}]
        for body in bodies:
            response = anyio.run(post, body)
            assert response.status_code == 400, body
            assert response.json()["kind"] == "BadRequest"
        assert fleet.instance("alpha")["status"] == "running"

    def test_cli_stops_several_through_one_request(self, fleet: DaemonProcess) -> None:
        """``eyriectl stop`` of several names prints each one's end state and names the one it could not
        stop, exiting 1."""
        result = eyriectl(fleet.home, "stop", "alpha", "nosuch", "gamma")
        assert result.returncode == 1
        assert "alpha: stopped (stopped by request)" in result.stdout
        assert "gamma: stopped (stopped by request)" in result.stdout
        assert "nosuch" in result.stderr
        assert fleet.instance("beta")["status"] == "running"
