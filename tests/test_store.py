"""The instance store: the seed's operations and errors, safe ids, atomic 0600 files, corrupt files reported,
and two real processes writing one instance at once without losing an update or tearing a read."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from supervisor._fs import atomic_write, locked
from supervisor.errors import CorruptInstance, InvalidID, NameExists, NotFound, RequiredField
from supervisor.models import Instance, InstanceStatus, LastExit, new_instance_id
from supervisor.paths import Home
from supervisor.store import INSTANCE_FILE, Store

WRITER = Path(__file__).parent / "programs" / "store_writer.py"

BAD_IDS = ["../x", "a/b", "", "/etc", "/tmp/x", ".", "..", "a b", "a\nb"]


def make(name: str = "alpha", **fields: object) -> Instance:
    return Instance.model_validate({"id": new_instance_id(), "name": name, "framework": "embedded", **fields})


def _bump_restart_count(inst: Instance) -> None:
    inst.restart_count += 1


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The next line the process prints, failing (not hanging) if none comes before the deadline."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"pid {proc.pid} printed nothing within {timeout}s")
    return proc.stdout.readline().strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()


class TestStore:
    WRITES = 300

    def test_root_is_instances_under_home(self, home: Home) -> None:
        """A store built from the home lives in ``$EYRIE_HOME/instances``."""
        assert Store(home).root == home.root / "instances"
        assert Store(Home.resolve()).root == home.root / "instances"

    def test_save_then_get(self, store: Store) -> None:
        """An instance saved is read back equal."""
        inst = make(port=43010, status=InstanceStatus.RUNNING, pid=123)
        store.save(inst)
        assert store.get(inst.id) == inst

    def test_instance_json_is_0600_in_a_0700_dir(self, store: Store) -> None:
        """instance.json is owner-only (0600), its directory 0700, and no temp file is left beside it."""
        inst = make()
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.dir(inst.id).stat().st_mode) == 0o700
        assert not [p for p in store.dir(inst.id).iterdir() if p.name.endswith(".tmp")]

    def test_file_uses_seed_keys_without_secrets(self, store: Store) -> None:
        """The file on disk is a JSON object with the seed's keys and no auth token."""
        inst = make(auth_token="tok-123", port=43011)
        store.save(inst)
        text = (store.dir(inst.id) / INSTANCE_FILE).read_text()
        data = json.loads(text)
        assert data["id"] == inst.id and data["name"] == "alpha" and data["port"] == 43011
        assert "auth_token" not in data and "tok-123" not in text

    def test_unknown_keys_survive_a_read_save_cycle(self, store: Store) -> None:
        """A key written by a newer tool stays in the file after get → save."""
        inst = make()
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        data = json.loads(path.read_text())
        data["from_the_future"] = {"x": [1, 2]}
        path.write_text(json.dumps(data))
        store.save(store.get(inst.id))
        assert json.loads(path.read_text())["from_the_future"] == {"x": [1, 2]}

    def test_reads_a_go_written_file(self, store: Store) -> None:
        """An instance.json in eyrie's Go format (zero times, omitted keys) is listed and read."""
        iid = new_instance_id()
        directory = store.root / iid
        directory.mkdir(parents=True)
        go = {
            "id": iid,
            "name": "talon-1",
            "display_name": "Talon 1",
            "framework": "zeroclaw",
            "port": 43003,
            "config_path": str(directory / "config.toml"),
            "workspace_path": str(directory / "workspace"),
            "status": "stopped",
            "status_updated_at": "0001-01-01T00:00:00Z",
            "created_at": "2026-02-01T10:00:00.5+01:00",
            "created_by": "user",
        }
        (directory / INSTANCE_FILE).write_text(json.dumps(go, indent=2))
        [inst] = store.list()
        assert inst.name == "talon-1" and inst.status is InstanceStatus.STOPPED
        assert inst.status_updated_at is None

    def test_list_is_ordered_by_creation(self, store: Store) -> None:
        """list returns instances oldest first, whatever their ids."""
        names = ["c", "a", "b"]
        for i, name in enumerate(names):
            store.save(make(name, created_at=f"2026-01-0{i + 1}T00:00:00Z"))
        assert [i.name for i in store.list()] == names

    def test_list_of_missing_root_is_empty(self, tmp_path: Path) -> None:
        """A store whose directory does not exist yet lists nothing and reports no problem."""
        store = Store(tmp_path / "nowhere")
        assert store.list() == [] and store.problems() == []

    def test_get_missing_is_not_found(self, store: Store) -> None:
        """get of an id with no directory raises NotFound."""
        with pytest.raises(NotFound):
            store.get(new_instance_id())

    def test_get_by_name(self, store: Store) -> None:
        """get_by_name finds an instance by its slug, and raises NotFound for an unknown one."""
        inst = make("beta")
        store.save(inst)
        assert store.get_by_name("beta").id == inst.id
        with pytest.raises(NotFound):
            store.get_by_name("gamma")

    def test_name_exists(self, store: Store) -> None:
        """name_exists is true only for a saved name."""
        store.save(make("beta"))
        assert store.name_exists("beta")
        assert not store.name_exists("gamma")

    def test_create_refuses_a_taken_name(self, store: Store) -> None:
        """create raises NameExists for a name already in the store and writes nothing."""
        store.create(make("beta"))
        dup = make("beta")
        with pytest.raises(NameExists, match="beta"):
            store.create(dup)
        assert not store.dir(dup.id).exists()

    @pytest.mark.parametrize("field", ["id", "name", "framework"])
    def test_save_requires_fields(self, store: Store, field: str) -> None:
        """Saving an instance without id, name or framework raises RequiredField naming the field."""
        inst = make()
        setattr(inst, field, "")
        with pytest.raises(RequiredField, match=field):
            store.save(inst)
        assert not store.root.exists() or not any(store.root.iterdir())

    def test_update_status(self, store: Store) -> None:
        """update_status changes the status and stamps status_updated_at; a bad status is refused."""
        inst = make()
        store.save(inst)
        updated = store.update_status(inst.id, "running")
        assert updated.status is InstanceStatus.RUNNING and updated.status_updated_at is not None
        assert store.get(inst.id).status is InstanceStatus.RUNNING
        with pytest.raises(ValueError):
            store.update_status(inst.id, "exploded")
        assert store.get(inst.id).status is InstanceStatus.RUNNING

    def test_update_status_of_missing_is_not_found(self, store: Store) -> None:
        """update_status of an unknown id raises NotFound."""
        with pytest.raises(NotFound):
            store.update_status(new_instance_id(), InstanceStatus.STOPPED)

    def test_update_changes_only_what_the_mutator_changes(self, store: Store) -> None:
        """update reads, applies the function and writes; other fields are kept."""
        inst = make(port=43020)
        store.save(inst)
        store.update(inst.id, lambda i: setattr(i, "restart_count", 4))
        again = store.get(inst.id)
        assert again.restart_count == 4 and again.port == 43020

    def test_update_that_raises_writes_nothing(self, store: Store) -> None:
        """A mutator that raises leaves the file as it was."""
        inst = make()
        store.save(inst)
        before = (store.dir(inst.id) / INSTANCE_FILE).read_bytes()

        def boom(i: Instance) -> None:
            i.restart_count = 99
            raise RuntimeError("no")

        with pytest.raises(RuntimeError):
            store.update(inst.id, boom)
        assert (store.dir(inst.id) / INSTANCE_FILE).read_bytes() == before

    def test_delete_removes_everything(self, store: Store) -> None:
        """delete removes the directory with all its files; a second delete is NotFound."""
        inst = make()
        store.save(inst)
        (store.dir(inst.id) / "workspace").mkdir()
        (store.dir(inst.id) / "workspace" / "SOUL.md").write_text("x")
        store.delete(inst.id)
        assert not store.dir(inst.id).exists()
        with pytest.raises(NotFound):
            store.delete(inst.id)

    def test_token_is_read_from_secrets(self, store: Store) -> None:
        """token reads secrets/token (stripped) and is empty when the instance has none."""
        inst = make()
        store.save(inst)
        assert store.token(inst.id) == ""
        (store.dir(inst.id) / "secrets").mkdir(mode=0o700)
        (store.dir(inst.id) / "secrets" / "token").write_text("abc\n")
        assert store.token(inst.id) == "abc"

    @pytest.mark.parametrize("bad", BAD_IDS)
    def test_bad_ids_are_rejected_before_any_path_is_touched(self, store: Store, bad: str) -> None:
        """Every id-taking call raises InvalidID for an unsafe id, and nothing is created on disk."""
        calls: list[Callable[[], object]] = [
            lambda: store.dir(bad),
            lambda: store.get(bad),
            lambda: store.delete(bad),
            lambda: store.update_status(bad, "running"),
            lambda: store.update(bad, _bump_restart_count),
            lambda: store.token(bad),
        ]
        for call in calls:
            with pytest.raises(InvalidID, match="invalid instance id"):
                call()
        with pytest.raises(InvalidID if bad else RequiredField):
            store.save(make(id=bad))
        assert not store.root.exists() or list(store.root.iterdir()) == []

    def test_get_of_corrupt_file_is_corrupt_instance(self, store: Store) -> None:
        """get of an unparsable instance.json raises CorruptInstance naming the file."""
        inst = make()
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        path.write_text("{not json")
        with pytest.raises(CorruptInstance, match=str(path)):
            store.get(inst.id)

    def test_corrupt_files_are_skipped_reported_and_kept(self, store: Store) -> None:
        """Unreadable files are skipped by list with a warning naming each, reported, never deleted."""
        good = make("good")
        store.save(good)
        broken: dict[str, str | None] = {
            "torn": '{"id": "torn", "name": "half',
            "notobject": "[1, 2]",
            "badfield": json.dumps({"id": "badfield", "name": "x", "framework": "y", "port": "eighty"}),
            "wrongid": json.dumps({"id": "other", "name": "x", "framework": "y"}),
            "binary": None,
            "nofile": "",
        }
        for name, text in broken.items():
            (store.root / name).mkdir()
            if name == "binary":
                (store.root / name / INSTANCE_FILE).write_bytes(b"\xff\xfe\x00")
            elif text:
                (store.root / name / INSTANCE_FILE).write_text(text)
        with capture_logs() as logs:
            listed = store.list()
        assert [i.name for i in listed] == ["good"]
        warned = {log["path"] for log in logs if log["event"] == "instance_unreadable"}
        assert warned == {str(store.root / name / INSTANCE_FILE) for name in broken}
        problems = {p.path.parent.name: p.reason for p in store.problems()}
        assert set(problems) == set(broken)
        assert "missing" in problems["nofile"]
        assert "port" in problems["badfield"]
        assert "does not match" in problems["wrongid"]
        for name, text in broken.items():
            if text:
                assert (store.root / name / INSTANCE_FILE).read_text() == text
        assert store.name_exists("x")  # the unreadable files still show it: it is not free

    def test_unreadable_file_is_a_problem_not_a_crash(self, store: Store) -> None:
        """An instance.json that cannot be read at all (here: a directory) is reported, not raised."""
        (store.root / "weird" / INSTANCE_FILE).mkdir(parents=True)
        assert store.list() == []
        [problem] = store.problems()
        assert "cannot be read" in problem.reason

    def test_lock_file_is_created_owner_only(self, store: Store) -> None:
        """The store-wide lock is in the root, which is created 0700; hidden files are not instances."""
        path = store.lock()
        assert path.parent == store.root
        assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
        path.touch()
        assert store.list() == [] and store.problems() == []

    def test_two_processes_updating_one_instance_lose_nothing_and_tear_nothing(
        self, store: Store, processes: list[subprocess.Popen[str]]
    ) -> None:
        """Two processes bump two fields 300 times under reads: both end at 300, every read parses."""
        inst = make("contended")
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        for field in ("restart_count", "total_restarts"):
            processes.append(_start("update", str(store.root), inst.id, field, str(self.WRITES)))
        for proc in processes:
            assert _read_line(proc) == "ready"

        reads: list[tuple[int, int]] = []
        failures: list[str] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                try:
                    data = json.loads(path.read_bytes())
                    got = store.get(inst.id)
                except Exception as exc:  # any failure is the finding
                    failures.append(repr(exc))
                    return
                reads.append((data["restart_count"], got.total_restarts))

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for proc in processes:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            for proc in processes:
                assert _read_line(proc, timeout=60) == "done"
                assert proc.wait(timeout=10) == 0
        finally:
            stop.set()
            thread.join(timeout=10)
        assert failures == []
        assert len(reads) > 10
        final = store.get(inst.id)
        assert (final.restart_count, final.total_restarts) == (self.WRITES, self.WRITES)
        counts = [r[0] for r in reads]
        assert counts == sorted(counts), "a reader saw restart_count go backwards"

    def test_reader_never_sees_a_partial_file(self, store: Store) -> None:
        """While a large instance is rewritten 200 times, a reader thread never gets unparsable bytes."""
        inst = make("big", cmdline=["x" * 1000] * 200)
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        failures: list[str] = []
        done = threading.Event()

        def reader() -> None:
            while not done.is_set():
                try:
                    json.loads(path.read_bytes())
                except ValueError as exc:
                    failures.append(str(exc))

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for _ in range(200):
                store.update(inst.id, _bump_restart_count)
        finally:
            done.set()
            thread.join(timeout=10)
        assert failures == []
        assert os.path.getsize(path) > 200_000


class TestRuntimeWrites:
    def test_update_without_durability_writes_the_same_file_without_fsync(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``durable=False`` still replaces the file whole (0600), but calls fsync on nothing."""
        inst = make()
        store.save(inst)
        synced: list[int] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        store.update(inst.id, _bump_restart_count, durable=False)
        assert synced == []
        path = store.dir(inst.id) / INSTANCE_FILE
        assert json.loads(path.read_text())["restart_count"] == 1
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        store.update(inst.id, _bump_restart_count)
        assert len(synced) == 2  # the default stays durable: the file, then its directory

    def test_update_that_must_not_wait_fails_fast_while_another_writer_holds_the_lock(
        self, store: Store
    ) -> None:
        """``wait=False`` raises BlockingIOError at once while the instance's lock is held; no change."""
        inst = make()
        store.save(inst)
        with locked(store.dir(inst.id) / ".lock"), pytest.raises(BlockingIOError):
            store.update(inst.id, _bump_restart_count, wait=False)
        assert store.get(inst.id).restart_count == 0
        assert store.update(inst.id, _bump_restart_count, wait=False).restart_count == 1

    def test_written_json_is_what_to_json_dict_says(self, store: Store) -> None:
        """The fast serialiser writes exactly ``to_json_dict``: kept unknown keys, nulls included."""
        inst = make(restart_count=2, cmdline=["a", "b"], future_key={"x": 1}, gone_key=None)
        inst.last_exit = LastExit(code=1)
        store.save(inst)
        on_disk = json.loads((store.dir(inst.id) / INSTANCE_FILE).read_text())
        assert on_disk == inst.to_json_dict() and on_disk["gone_key"] is None
        plain = make("beta", cmdline=["x"])
        store.save(plain)
        assert json.loads((store.dir(plain.id) / INSTANCE_FILE).read_text()) == plain.to_json_dict()


class TestScanCache:
    def test_list_sees_a_file_changed_behind_its_back(self, store: Store) -> None:
        """A scan re-reads every file: another writer's change shows in the next list, never a stale copy."""
        inst = make()
        store.save(inst)
        assert store.list()[0].restart_count == 0
        path = store.dir(inst.id) / INSTANCE_FILE
        data = json.loads(path.read_text())
        data["restart_count"] = 7
        path.write_text(json.dumps(data))
        assert store.list()[0].restart_count == 7

    def test_listed_instances_are_the_callers_to_change(self, store: Store) -> None:
        """Changing a listed instance (nested values too) does not change what the next list returns."""
        inst = make(cmdline=["a"])
        inst.last_exit = LastExit(code=3)
        store.save(inst)
        first = store.list()[0]
        first.restart_count = 9
        assert first.cmdline is not None and first.last_exit is not None
        first.cmdline.append("b")
        first.last_exit.code = 4
        again = store.list()[0]
        assert (again.restart_count, again.cmdline, again.last_exit) == (0, ["a"], LastExit(code=3))

    def test_a_file_that_turns_corrupt_is_reported_not_served_from_memory(self, store: Store) -> None:
        """Once its file is torn, an instance leaves the list and shows in problems."""
        inst = make()
        store.save(inst)
        assert len(store.list()) == 1
        (store.dir(inst.id) / INSTANCE_FILE).write_text("{")
        assert store.list() == [] and [p.path.parent.name for p in store.problems()] == [inst.id]

    def test_problems_follow_edits_in_place_and_replacements(self, store: Store) -> None:
        """Problems are judged again whenever a file changes, also after they were asked for and kept:
        torn in place, mended by a save, replaced by a torn file, then removed."""
        inst = make()
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        assert store.problems() == []
        with path.open("r+") as f:  # same inode, same size
            f.write("[")
        assert [p.path for p in store.problems()] == [path]
        store.save(inst)
        assert store.problems() == []
        torn = path.with_name("torn")
        torn.write_text(path.read_text()[:20])
        torn.replace(path)
        assert "not valid JSON" in store.problems()[0].reason
        path.unlink()
        assert [p.reason for p in store.problems()] == ["instance.json is missing"]


class TestAtomicWrite:
    def test_replaces_whole_with_the_mode_and_leaves_no_temp_file(self, tmp_path: Path) -> None:
        """Durable or not, the target is replaced with the new bytes and mode; no temp file stays."""
        target = tmp_path / "f.json"
        target.write_text("old")
        atomic_write(target, "new", mode=0o644)
        atomic_write(target, b"newer", mode=0o600, durable=False)
        assert target.read_bytes() == b"newer" and stat.S_IMODE(target.stat().st_mode) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]

    def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the rename fails, the old content stays and the temp file is removed."""
        target = tmp_path / "f.json"
        target.write_text("old")

        def refuse(src: str, dst: str) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", refuse)
        with pytest.raises(OSError, match="No space"):
            atomic_write(target, "new", durable=False)
        assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


class TestLookupByName:
    def test_finds_by_name_and_follows_changes_on_disk(self, store: Store) -> None:
        """A lookup by name stays right when a file is renamed by hand, deleted, or a name is reused."""
        first = make("alpha")
        store.save(first)
        assert store.get_by_name("alpha").id == first.id
        path = store.dir(first.id) / INSTANCE_FILE
        data = json.loads(path.read_text())
        data["name"] = "renamed"
        path.write_text(json.dumps(data))
        assert store.get_by_name("renamed").id == first.id
        with pytest.raises(NotFound):
            store.get_by_name("alpha")
        store.delete(first.id)
        second = make("renamed")
        store.save(second)
        assert store.get_by_name("renamed").id == second.id
