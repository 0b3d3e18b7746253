"""Machine-wide port claims: two homes never get one port, a claim names its holder, a stale claim is
reclaimed, a removed instance gives its port back, and a hostile claims directory is refused clearly."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from supervisor.errors import PortClaimsUnusable
from supervisor.models import CreateRequest, new_instance_id
from supervisor.paths import Home
from supervisor.port_claims import CLAIMS_DIR_VAR, GRACE_SECONDS, ClaimRegistry, PortOwner
from supervisor.provision import Provisioner
from supervisor.store import Store

PORT = 43500


def _home(root: Path) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    return Home(root)


def _owner(home: Path, instance_id: str | None = None) -> PortOwner:
    instance_id = instance_id or new_instance_id()
    return PortOwner.of(home, home / "instances" / instance_id, instance_id)


def _age(registry: ClaimRegistry, port: int, seconds: float = GRACE_SECONDS + 60) -> None:
    """Make the claim on ``port`` look ``seconds`` old."""
    then = time.time() - seconds
    os.utime(registry.root / str(port), (then, then))


def _record_instance(owner: PortOwner, port: int) -> None:
    directory = Path(owner.instance_dir)
    directory.mkdir(parents=True)
    (directory / "instance.json").write_text(json.dumps({"id": owner.instance_id, "port": port}))


@pytest.fixture
def registry(tmp_path: Path) -> ClaimRegistry:
    return ClaimRegistry(tmp_path / "claims")


class TestTwoHomes:
    def test_two_homes_never_get_the_same_port(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """Two homes provisioning at once, from eight threads, get 24 distinct ports (each home used to
        check only its own store, so both handed out the first free port)."""
        provisioners = [
            Provisioner(Store(home), home, claims=registry)
            for home in (_home(tmp_path / "a"), _home(tmp_path / "b"))
        ]
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def work(tag: int) -> None:
            try:
                start.wait(10)
                for i in range(3):
                    provisioners[tag % 2].provision(CreateRequest(name=f"t{tag}-{i}", framework="embedded"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        ports = [inst.port for p in provisioners for inst in p.store.list()]
        assert len(ports) == 24 and len(set(ports)) == 24
        assert sorted(ports) == [claim.port for claim in registry.claims()]

    def test_the_default_directory_is_shared_and_sticky(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a setting claims live in /var/tmp/eyrie-ports; a directory it creates is mode 1777."""
        monkeypatch.delenv(CLAIMS_DIR_VAR, raising=False)
        assert ClaimRegistry().root == Path("/var/tmp/eyrie-ports")
        monkeypatch.setenv(CLAIMS_DIR_VAR, str(tmp_path / "shared"))
        shared = ClaimRegistry()
        assert shared.claim(PORT, _owner(tmp_path / "h")) is None
        assert stat.S_IMODE(os.stat(tmp_path / "shared").st_mode) == 0o1777


class TestClaim:
    def test_a_claim_names_uid_home_and_instance(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """The claim file is world-readable JSON naming uid, home, instance and pid."""
        owner = _owner(tmp_path / "home")
        assert registry.claim(PORT, owner) is None
        path = registry.root / str(PORT)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        body = json.loads(path.read_text())
        assert body["uid"] == os.getuid() and body["home"] == str(tmp_path / "home")
        assert body["instance"] == owner.instance_id and body["pid"] == os.getpid()

    def test_claiming_again_is_idempotent(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """The owner claiming its own port again keeps it."""
        owner = _owner(tmp_path / "home")
        assert registry.claim(PORT, owner) is None
        assert registry.claim(PORT, owner) is None

    def test_the_instance_not_the_homes_spelling_owns_a_claim(
        self, tmp_path: Path, registry: ClaimRegistry
    ) -> None:
        """A claim is the instance's whatever its home is called (the engine knows the home only through
        its store), and never another instance's of the same home."""
        owner = _owner(tmp_path / "home")
        registry.claim(PORT, owner)
        same = PortOwner(str(tmp_path / "other-name"), owner.instance_id, owner.instance_dir, owner.uid)
        assert registry.claim(PORT, same) is None
        assert registry.claim(PORT, _owner(tmp_path / "home")) is not None

    def test_another_homes_live_claim_is_named(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """A port whose claim belongs to a live instance of another home is refused, naming that home."""
        first = _owner(tmp_path / "first")
        _record_instance(first, PORT)
        assert registry.claim(PORT, first) is None
        _age(registry, PORT)
        held = registry.claim(PORT, _owner(tmp_path / "second"))
        assert held is not None and held.owner == first
        assert str(tmp_path / "first") in held.describe()

    def test_a_young_claim_without_instance_is_held(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """A fresh claim whose instance is not saved yet (provisioning in progress) is not taken."""
        assert registry.claim(PORT, _owner(tmp_path / "first")) is None
        assert registry.claim(PORT, _owner(tmp_path / "second")) is not None

    def test_release_removes_only_ones_own(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """Releasing gives the port back; another owner's release leaves the claim alone."""
        owner = _owner(tmp_path / "home")
        registry.claim(PORT, owner)
        registry.release(PORT, _owner(tmp_path / "other"))
        assert registry.read(PORT) is not None
        registry.release(PORT, owner)
        assert registry.read(PORT) is None


class TestStale:
    def test_claim_of_a_removed_instance_is_reclaimed(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """An old claim whose instance directory is gone (a deleted test home) goes to the next asker."""
        registry.claim(PORT, _owner(tmp_path / "gone"))
        _age(registry, PORT)
        second = _owner(tmp_path / "second")
        assert registry.claim(PORT, second) is None
        claim = registry.read(PORT)
        assert claim is not None and claim.owner == second

    def test_young_claim_of_an_ended_process_without_instance_is_reclaimed(
        self, tmp_path: Path, registry: ClaimRegistry
    ) -> None:
        """A fresh claim whose claiming process has ended and whose instance does not exist (a test daemon
        whose home was deleted) is stale at once: no grace period to wait out."""
        gone = _owner(tmp_path / "gone")
        registry.root.mkdir()
        probe = subprocess.Popen(["true"])
        probe.wait()
        body = {
            "port": PORT,
            "uid": gone.uid,
            "home": gone.home,
            "instance": gone.instance_id,
            "instance_dir": gone.instance_dir,
            "pid": probe.pid,
        }
        (registry.root / str(PORT)).write_text(json.dumps(body))
        assert registry.claim(PORT, _owner(tmp_path / "second")) is None

    def test_claim_of_an_instance_on_another_port_is_reclaimed(
        self, tmp_path: Path, registry: ClaimRegistry
    ) -> None:
        """An old claim whose instance now records another port (it moved) is stale."""
        first = _owner(tmp_path / "first")
        _record_instance(first, PORT + 1)
        registry.claim(PORT, first)
        _age(registry, PORT)
        assert registry.claim(PORT, _owner(tmp_path / "second")) is None

    def test_unreadable_claim_of_ours_is_reclaimed_when_old(
        self, tmp_path: Path, registry: ClaimRegistry
    ) -> None:
        """Garbage at a port's name is held while young, reclaimed once old (it is our own file)."""
        registry.root.mkdir()
        (registry.root / str(PORT)).write_text("{not json")
        owner = _owner(tmp_path / "home")
        held = registry.claim(PORT, owner)
        assert held is not None and held.owner is None and "unreadable" in held.describe()
        _age(registry, PORT)
        assert registry.claim(PORT, owner) is None

    def test_a_symlink_is_never_followed(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """A symlink planted at a port's name holds it; nothing is read or written through it."""
        registry.root.mkdir()
        target = tmp_path / "secret"
        target.write_text("keep")
        (registry.root / str(PORT)).symlink_to(target)
        held = registry.claim(PORT, _owner(tmp_path / "home"))
        assert held is not None and held.owner is None
        assert target.read_text() == "keep"

    def test_racing_reclaimers_get_one_winner(self, tmp_path: Path, registry: ClaimRegistry) -> None:
        """Eight threads reclaiming one stale claim at once: exactly one of them gets the port."""
        registry.claim(PORT, _owner(tmp_path / "gone"))
        _age(registry, PORT)
        owners = [_owner(tmp_path / f"h{n}") for n in range(8)]
        won: list[PortOwner] = []
        start = threading.Barrier(8)

        def work(owner: PortOwner) -> None:
            start.wait(10)
            if registry.claim(PORT, owner) is None:
                won.append(owner)

        threads = [threading.Thread(target=work, args=(o,)) for o in owners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        claim = registry.read(PORT)
        assert len(won) == 1 and claim is not None and claim.owner == won[0]


class TestDirectory:
    def test_a_file_in_its_place_is_a_clear_error(self, tmp_path: Path) -> None:
        """A file where the claims directory goes is refused, naming the directory and the setting."""
        (tmp_path / "claims").write_text("")
        where = rf"{tmp_path}/claims: it is not a directory.*{CLAIMS_DIR_VAR}"
        with pytest.raises(PortClaimsUnusable, match=where):
            ClaimRegistry(tmp_path / "claims").claim(PORT, _owner(tmp_path / "home"))

    def test_a_symlinked_directory_is_refused(self, tmp_path: Path) -> None:
        """A symlink in place of the directory is refused, not followed."""
        (tmp_path / "real").mkdir()
        (tmp_path / "claims").symlink_to(tmp_path / "real")
        with pytest.raises(PortClaimsUnusable, match="not a directory"):
            ClaimRegistry(tmp_path / "claims").claim(PORT, _owner(tmp_path / "home"))
        assert list((tmp_path / "real").iterdir()) == []

    @pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
    def test_a_foreign_private_directory_is_refused(self, tmp_path: Path) -> None:
        """A directory another user owns that is not shared (1777) is refused."""
        root = tmp_path / "claims"
        root.mkdir(mode=0o755)
        os.chown(root, 65534, 65534)
        with pytest.raises(PortClaimsUnusable, match="belongs to uid 65534"):
            ClaimRegistry(root).claim(PORT, _owner(tmp_path / "home"))


class TestRemoval:
    def test_deprovision_releases_the_claim(self, home: Home, registry: ClaimRegistry) -> None:
        """Removing an instance (purged, or moved to the trash) gives its port's claim back at once."""
        provisioner = Provisioner(Store(home), home, claims=registry)
        for purge in (False, True):
            request = CreateRequest(name=f"gone-{purge}".lower(), framework="embedded")
            inst = provisioner.provision(request)
            assert registry.read(inst.port) is not None
            provisioner.deprovision(inst.id, purge=purge)
            assert registry.read(inst.port) is None
