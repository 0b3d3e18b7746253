"""The reconciler in-process, over a real engine and real agents: what one instance gets wrong (its renderer,
its record) stays that instance's, and is retried by the next reload instead of being taken as applied."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from supervisor.daemon._last_applied import APPLIED_FILE
from supervisor.daemon.reconciler import Reconciler
from supervisor.engine import Engine
from supervisor.frameworks import render
from supervisor.models import Instance, InstanceStatus
from supervisor.paths import Home
from supervisor.provision import Provisioner
from supervisor.store import Store
from supervisor.testing import make_instance, running_engine, wait_instance
from tests._daemon import embedded, fleet_yaml

pytestmark = pytest.mark.anyio


def _reconciler(home: Home, store: Store, engine: Engine, fleet: str) -> Reconciler:
    home.fleet_file.write_text(fleet)
    home.ensure_run_dir()
    return Reconciler(home.fleet_file, store, Provisioner(store, home), engine)


async def _running(engine: Engine, reconciler: Reconciler, name: str) -> Instance:
    applied = reconciler.applied(name)
    assert applied is not None, reconciler.errors()
    return await wait_instance(
        engine, applied.instance_id, lambda i: i.status is InstanceStatus.RUNNING, timeout=20
    )


class TestOneInstanceFails:
    async def test_a_renderer_that_raises_fails_its_instance_alone_and_is_retried(
        self, home: Home, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A renderer raising for one instance: the reload applies the rest and lists that instance's
        problem; the same file reloaded once the renderer works adds it (never "unchanged")."""
        store = Store(home)
        original = render.render_config

        def broken(framework: str, ctx: Any, **options: Any) -> str:
            if ctx.name == "beta":
                raise RuntimeError("renderer bug")
            return original(framework, ctx, **options)

        monkeypatch.setattr("supervisor.provision.render_config", broken)
        async with running_engine(store) as engine:
            reconciler = _reconciler(home, store, engine, fleet_yaml(embedded("alpha"), embedded("beta")))
            result = await reconciler.reload()
            assert result.ok and result.added == ["alpha"]
            assert len(result.problems) == 1 and result.problems[0].startswith("beta: ")
            assert "renderer bug" in result.problems[0]
            await _running(engine, reconciler, "alpha")
            monkeypatch.setattr("supervisor.provision.render_config", original)
            again = await reconciler.reload()
            assert again.added == ["beta"] and again.unchanged == ["alpha"] and again.problems == []
            await _running(engine, reconciler, "beta")

    async def test_a_record_that_cannot_run_is_in_error_alone_until_fixed(self, home: Home) -> None:
        """A stored instance whose record cannot make a process (port out of range) is shown in error with
        a plain last_error; the other runs; once the record is fixed a reload runs it."""
        store = Store(home)
        broken = make_instance(store, "alpha", port=99999)
        async with running_engine(store) as engine:
            reconciler = _reconciler(home, store, engine, fleet_yaml(embedded("alpha"), embedded("beta")))
            result = await reconciler.reload()
            assert result.ok and result.added == ["beta"]
            await _running(engine, reconciler, "beta")
            stored = store.get(broken.id)
            assert stored.status is InstanceStatus.ERROR
            assert stored.last_error == "instance 'alpha': port 99999 is not in 0..65535"
            assert result.problems == [f"alpha: {stored.last_error}"]

            def fix(i: Instance) -> None:
                i.port = 0  # given a free one on the next try

            store.update(broken.id, fix)
            again = await reconciler.reload()
            assert again.added == ["alpha"] and again.problems == []
            assert (await _running(engine, reconciler, "alpha")).port > 0


class TestLastApplied:
    async def test_each_applied_fleet_is_kept_and_a_rejected_one_is_not(self, home: Home) -> None:
        """The fleet in force is kept in run/ after each apply; a rejected reload leaves the copy alone."""
        store = Store(home)
        async with running_engine(store) as engine:
            reconciler = _reconciler(home, store, engine, fleet_yaml(embedded("alpha")))
            await reconciler.reload()
            kept = home.run_dir / APPLIED_FILE
            names = [i["name"] for i in json.loads(kept.read_text())["instances"]]
            assert names == ["alpha"]
            assert kept.stat().st_mode & 0o777 == 0o600
            before = kept.read_bytes()
            home.fleet_file.write_text(fleet_yaml(embedded("alpha", "ready: {kind: log}")))
            result = await reconciler.reload()
            assert not result.ok and "log probe needs a pattern" in result.error
            assert kept.read_bytes() == before

    async def test_unreadable_copy_means_an_empty_fleet(self, home: Home) -> None:
        """With fleet.yaml invalid and the kept copy unreadable (a FIFO here), eyried starts with no
        instances and says why, without blocking."""
        store = Store(home)
        async with running_engine(store) as engine:
            reconciler = _reconciler(home, store, engine, "version: 2\n")
            os.mkfifo(home.run_dir / APPLIED_FILE)
            result = await reconciler.start()
            assert not result.ok and "no instances" in result.error
            assert reconciler.managed() == {}

    async def test_a_missing_fleet_file_runs_the_fleet_last_applied(self, home: Home) -> None:
        """fleet.yaml gone while eyried was down: it runs the fleet last applied and says the file is missing
        (a new home, with nothing kept, starts empty as before)."""
        store = Store(home)
        async with running_engine(store) as engine:
            first = _reconciler(home, store, engine, fleet_yaml(embedded("alpha")))
            assert (await first.start()).ok
            alpha = await _running(engine, first, "alpha")
        home.fleet_file.unlink()
        async with running_engine(store) as engine:
            second = Reconciler(home.fleet_file, store, Provisioner(store, home), engine)
            result = await second.start()
            assert not result.ok and "fleet file not found" in result.error
            assert "the fleet last applied" in result.error
            assert (await _running(engine, second, "alpha")).id == alpha.id
