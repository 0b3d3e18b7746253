"""Provisioning many instances in one batch (one scan of the store, ports from the set it found), and the
daemon's ``fleet ready`` event after a start and after an adoption."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.errors import NameExists, ProvisionError, UnsupportedFramework
from supervisor.models import CreateRequest
from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry, PortOwner
from supervisor.ports import PortRange, port_in_use
from supervisor.provision import Provisioner
from supervisor.store import Store
from tests._cli import eyriectl
from tests._daemon import embedded, fleet_yaml, running_daemon, wait_for


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


@pytest.fixture
def provisioner(store: Store, home: Home, tmp_path: Path) -> Provisioner:
    return Provisioner(store, home, claims=ClaimRegistry(tmp_path / "port-claims"))


def _req(name: str, framework: str = "embedded") -> CreateRequest:
    return CreateRequest(name=name, framework=framework)


def _free_span(size: int) -> PortRange:
    """``size`` consecutive ports in 47000–48999 that nothing has bound now."""
    for first in range(47000, 49000 - size, size):
        if not any(port_in_use(port) for port in range(first, first + size)):
            return PortRange(first, first + size - 1)
    pytest.skip("no free run of ports")


@pytest.fixture
def counted_scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times the store was scanned whole (``Store._scan``) while the test ran."""
    scans: list[int] = []
    real = Store._scan

    def scan(self: Store) -> Any:
        scans.append(1)
        return real(self)

    monkeypatch.setattr(Store, "_scan", scan)
    yield scans


class TestBatch:
    def test_many_get_unique_names_and_ports_from_one_scan(
        self, provisioner: Provisioner, store: Store, counted_scans: list[int]
    ) -> None:
        """Twenty instances in one batch: one scan of the store, twenty distinct ports, all of them saved."""
        provisioner.ports = _free_span(40)
        with provisioner.batch() as batch:
            made = [batch.add(_req(f"agent-{i:02d}")) for i in range(20)]
            assert batch.commit() == {}
        assert len(counted_scans) == 1
        assert len({inst.port for inst in made}) == 20
        assert {inst.name for inst in store.list()} == {f"agent-{i:02d}" for i in range(20)}
        assert sorted(c.port for c in provisioner.claims.claims()) == sorted(i.port for i in made)
        assert not (store.root / ".staging").exists()

    def test_existing_ports_and_names_are_kept(self, provisioner: Provisioner, store: Store) -> None:
        """An instance already in the store keeps its port and name; the batch takes neither."""
        provisioner.ports = _free_span(10)
        first = provisioner.provision(_req("old-timer"))
        with provisioner.batch() as batch:
            with pytest.raises(NameExists, match="already exists"):
                batch.add(_req("old-timer"))
            made = [batch.add(_req(f"new-{i}")) for i in range(3)]
            batch.commit()
        assert first.port not in {inst.port for inst in made}
        assert store.get(first.id).port == first.port

    def test_a_name_given_twice_in_one_batch_is_refused_the_second_time(
        self, provisioner: Provisioner, store: Store
    ) -> None:
        provisioner.ports = _free_span(10)
        with provisioner.batch() as batch:
            batch.add(_req("twin"))
            with pytest.raises(NameExists):
                batch.add(_req("twin"))
            assert batch.commit() == {}
        assert [inst.name for inst in store.list()] == ["twin"]

    def test_a_strangers_port_and_another_homes_claim_are_skipped(
        self, provisioner: Provisioner, tmp_path: Path
    ) -> None:
        """The first port is bound by a stranger, the second claimed by another home: the batch starts at
        the third."""
        span = _free_span(10)
        provisioner.ports = span
        stranger = socket.socket()
        stranger.bind(("127.0.0.1", span.first))
        stranger.listen()
        other = PortOwner.of(tmp_path / "other-home", tmp_path / "other-home" / "x", "x")
        assert provisioner.claims.claim(span.first + 1, other) is None
        try:
            with provisioner.batch() as batch:
                made = [batch.add(_req(f"agent-{i}")) for i in range(2)]
                batch.commit()
        finally:
            stranger.close()
            provisioner.claims.release(span.first + 1, other)
        assert [inst.port for inst in made] == [span.first + 2, span.first + 3]

    def test_another_homes_claims_are_tried_once_per_batch(
        self, provisioner: Provisioner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Ten ports claimed by another home, then twenty new instances: each of the ten is tried once in
        the batch, not once per instance (the first start of a big fleet beside another fleet's claims)."""
        span = _free_span(40)
        provisioner.ports = span
        other = PortOwner.of(tmp_path / "other-home", tmp_path / "other-home" / "x", "x")
        foreign = range(span.first, span.first + 10)
        for port in foreign:
            assert provisioner.claims.claim(port, other) is None
        tried: list[int] = []
        real_claim = provisioner.claims.claim

        def claim(port: int, owner: PortOwner) -> Any:
            tried.append(port)
            return real_claim(port, owner)

        monkeypatch.setattr(provisioner.claims, "claim", claim)
        try:
            with provisioner.batch() as batch:
                made = [batch.add(_req(f"agent-{i:02d}")) for i in range(20)]
                assert batch.commit() == {}
        finally:
            for port in foreign:
                provisioner.claims.release(port, other)
        assert all(tried.count(port) == 1 for port in foreign)
        assert [inst.port for inst in made] == list(range(span.first + 10, span.first + 30))

    def test_one_bad_request_leaves_the_others_alone(self, provisioner: Provisioner, store: Store) -> None:
        provisioner.ports = _free_span(10)
        with provisioner.batch() as batch:
            good = batch.add(_req("good"))
            with pytest.raises(UnsupportedFramework):
                batch.add(_req("bad", framework="no-such-framework"))
            assert batch.commit() == {}
        assert [inst.id for inst in store.list()] == [good.id]
        assert [c.port for c in provisioner.claims.claims()] == [good.port]

    def test_a_failed_move_into_place_gives_back_its_port(
        self, provisioner: Provisioner, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The second instance cannot be renamed into the store: it is reported, its claim given back, and
        the first is in place."""
        provisioner.ports = _free_span(10)
        real = os.rename
        renames: list[str] = []

        def rename(src: Any, dst: Any) -> None:
            renames.append(str(dst))
            if len(renames) == 2:
                raise OSError(28, "No space left on device")
            real(src, dst)

        with provisioner.batch() as batch:
            first, second = batch.add(_req("first")), batch.add(_req("second"))
            monkeypatch.setattr(os, "rename", rename)
            failed = batch.commit()
            monkeypatch.undo()
        assert list(failed) == [second.id]
        assert isinstance(failed[second.id], ProvisionError)
        assert "'second'" in str(failed[second.id])
        assert [inst.id for inst in store.list()] == [first.id]
        assert [c.port for c in provisioner.claims.claims()] == [first.port]
        assert not (store.root / ".staging").exists()

    def test_a_batch_left_by_an_error_leaves_nothing(self, provisioner: Provisioner, store: Store) -> None:
        """An exception inside the block before the commit: nothing staged survives, no claim stays."""
        provisioner.ports = _free_span(10)
        with pytest.raises(RuntimeError), provisioner.batch() as batch:
            batch.add(_req("never"))
            raise RuntimeError("interrupted")
        assert store.list() == []
        assert provisioner.claims.claims() == []
        assert sorted(p.name for p in store.root.iterdir()) == [".lock"]


def _fleet_ready_events(home: Path) -> list[dict[str, Any]]:
    result = eyriectl(home, "events", "--json", "-n", "1000")
    if result.returncode != 0:
        return []
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [e for e in events if e["event"] == "daemon" and e["detail"] == "fleet ready"]


class TestFleetReady:
    def test_after_a_start_and_after_an_adoption(self, tmp_path: Path) -> None:
        """A first start says both instances were started; a new daemon after kill -9 says it adopted them,
        and their processes are the same."""
        with running_daemon(tmp_path, fleet_yaml(embedded("alpha"), embedded("beta"))) as d:
            pids = d.wait_running("alpha", "beta")
            first = wait_for(lambda: _fleet_ready_events(tmp_path), 20, "the first fleet ready event")
            assert len(first) == 1
            assert first[0]["data"]["started"] + first[0]["data"]["adopted"] == 2
            assert first[0]["data"]["failed"] == 0
            assert first[0]["data"]["seconds"] > 0
            d.kill()
            d.start()
            d.wait_serving()
            again = wait_for(lambda: _fleet_ready_events(tmp_path), 20, "the new daemon's fleet ready event")
            assert len(again) == 1
            assert again[0]["data"] | {"seconds": 0} == {
                "adopted": 2,
                "started": 0,
                "failed": 0,
                "stopped": 0,
                "seconds": 0,
            }
            assert d.wait_running("alpha", "beta") == pids

    def test_a_held_and_a_failing_instance_count_too(self, tmp_path: Path) -> None:
        """An instance that cannot start and one not wanted running still let the fleet come to rest."""
        fleet = fleet_yaml(
            embedded("alpha"),
            embedded("lazy", "autostart: false"),
        )
        with running_daemon(tmp_path, fleet) as d:
            d.wait_running("alpha")
            ready = wait_for(lambda: _fleet_ready_events(tmp_path), 20, "the fleet ready event")
            assert ready[0]["data"]["started"] == 1
            assert ready[0]["data"]["stopped"] == 1
