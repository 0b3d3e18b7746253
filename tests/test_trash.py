"""The trash: a removed instance's directory moves whole, comes back whole, and only emptying deletes it;
nothing follows a symlink out of the home."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from supervisor.errors import Conflict, NotFound
from supervisor.models import Instance, new_instance_id
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.trash import TRASH_DIR, Trash, delete_tree

DECLARATION = {"name": "scout", "framework": "embedded", "model": "m1"}


def _stored(home: Home, name: str = "scout") -> Instance:
    inst = Instance.model_validate({"id": new_instance_id(), "name": name, "framework": "embedded"})
    store = Store(home)
    store.save(inst)
    memory = store.dir(inst.id) / "workspace" / "memory"
    memory.mkdir(parents=True)
    (memory / "notes.md").write_text(f"{name} remembers\n")
    return inst


@pytest.fixture
def trash(home: Home) -> Trash:
    return Trash(home)


class TestMoveIn:
    def test_whole_directory_moves_with_its_record(self, home: Home, trash: Trash) -> None:
        """The directory lands at removed/<name>-<id>-<UTC time>/ intact, with a record beside it."""
        inst = _stored(home)
        when = datetime(2026, 11, 30, 9, 1, 2, tzinfo=UTC)
        entry = trash.move_in(inst.id, name="scout", declaration=DECLARATION, now=when)
        assert entry.path == home.root / TRASH_DIR / f"scout-{inst.id}-20261130T090102Z"
        assert (entry.path / "workspace" / "memory" / "notes.md").read_text() == "scout remembers\n"
        assert not Store(home).dir(inst.id).exists() and Store(home).list() == []
        record = json.loads(entry.path.with_name(entry.path.name + ".json").read_text())
        assert record["declaration"] == DECLARATION and record["id"] == inst.id
        assert trash.entries() == [entry]

    def test_same_second_twice_gets_a_second_name(self, home: Home, trash: Trash) -> None:
        """Two removals of one name in the same second never overwrite each other."""
        when = datetime(2026, 11, 30, 9, 1, 2, tzinfo=UTC)
        first = trash.move_in(_stored(home).id, name="scout", now=when)
        second = trash.move_in(_stored(home).id, name="scout", now=when)
        assert first.path != second.path and len(trash.entries()) == 2

    def test_unknown(self, trash: Trash) -> None:
        """Moving an instance that does not exist is NotFound and creates nothing."""
        with pytest.raises(NotFound):
            trash.move_in(new_instance_id(), name="ghost")

    def test_symlinked_directory_moves_as_the_link(self, home: Home, trash: Trash, tmp_path: Path) -> None:
        """An instance directory that is a symlink moves as the link; what it points at stays put."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "precious").write_text("not the daemon's\n")
        instance_id = new_instance_id()
        Store(home).root.mkdir(parents=True)
        Store(home).dir(instance_id).symlink_to(outside)
        entry = trash.move_in(instance_id, name="linked")
        assert entry.path.is_symlink() and (outside / "precious").read_text() == "not the daemon's\n"
        trash.empty()
        assert not os.path.lexists(entry.path) and (outside / "precious").exists()


class TestFindAndRestore:
    def test_newest_copy_unless_an_id_is_given(self, home: Home, trash: Trash) -> None:
        """find gives the newest copy of a name; with an id, that copy."""
        old, new = _stored(home), _stored(home)
        trash.move_in(old.id, name="scout", now=datetime(2026, 1, 1, tzinfo=UTC))
        trash.move_in(new.id, name="scout", now=datetime(2026, 2, 1, tzinfo=UTC))
        assert trash.find("scout").instance_id == new.id
        assert trash.find("scout", instance_id=old.id).instance_id == old.id
        with pytest.raises(NotFound, match="ghost"):
            trash.find("ghost")

    def test_restore_puts_it_back(self, home: Home, trash: Trash) -> None:
        """A restored entry is an instance again, memory and all, and leaves no record behind."""
        inst = _stored(home)
        entry = trash.move_in(inst.id, name="scout", declaration=DECLARATION)
        assert trash.restore(entry) == Store(home).dir(inst.id)
        assert Store(home).get_by_name("scout").id == inst.id
        assert (Store(home).dir(inst.id) / "workspace/memory/notes.md").read_text() == "scout remembers\n"
        assert trash.entries() == [] and list((home.root / TRASH_DIR).iterdir()) == []

    def test_restore_refused_while_the_name_is_taken(self, home: Home, trash: Trash) -> None:
        """While another instance carries the name, restoring is a Conflict and the entry stays."""
        entry = trash.move_in(_stored(home).id, name="scout")
        _stored(home)
        with pytest.raises(Conflict, match="scout"):
            trash.restore(entry)
        assert trash.entries() == [entry]

    def test_put_back_undoes_a_restore(self, home: Home, trash: Trash) -> None:
        """put_back returns a restored directory to the trash with its record."""
        entry = trash.move_in(_stored(home).id, name="scout", declaration=DECLARATION)
        trash.restore(entry)
        trash.put_back(entry)
        assert Store(home).list() == [] and trash.find("scout").declaration == DECLARATION


class TestEmpty:
    def test_older_than_keeps_the_young(self, home: Home, trash: Trash) -> None:
        """empty(older_than) deletes only entries removed longer ago than that."""
        now = datetime(2026, 11, 30, tzinfo=UTC)
        old = trash.move_in(_stored(home).id, name="scout", now=now - timedelta(days=40))
        young = trash.move_in(_stored(home, "other").id, name="other", now=now - timedelta(days=2))
        assert trash.empty(older_than=timedelta(days=30), now=now) == [old]
        assert trash.entries() == [young] and not old.path.exists()
        assert not old.path.with_name(old.path.name + ".json").exists()
        assert trash.empty() == [young] and trash.entries() == []

    def test_record_without_directory_is_cleared(self, home: Home, trash: Trash) -> None:
        """A record whose directory never arrived (a crash mid-move) is cleared by the next empty."""
        (home.root / TRASH_DIR).mkdir()
        stray = home.root / TRASH_DIR / f"scout-{new_instance_id()}-20260101T000000Z.json"
        stray.write_text("{}")
        assert trash.entries() == [] and trash.empty() == []
        assert not stray.exists()

    def test_delete_tree_never_follows_a_link(self, tmp_path: Path) -> None:
        """delete_tree removes a symlink as a link, and a tree without following links inside it."""
        target = tmp_path / "target"
        target.mkdir()
        (target / "keep").write_text("x")
        link = tmp_path / "link"
        link.symlink_to(target)
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "inner").symlink_to(target)
        delete_tree(link)
        delete_tree(tree)
        delete_tree(tmp_path / "absent")
        assert (target / "keep").exists() and not os.path.lexists(link) and not tree.exists()


class TestHostileEntries:
    def test_entry_of_an_earlier_release(self, home: Home, trash: Trash) -> None:
        """removed/<name>-<id>/ (kept files of earlier releases) lists, restores and empties like the rest."""
        inst = _stored(home)
        (home.root / TRASH_DIR).mkdir()
        legacy = home.root / TRASH_DIR / f"scout-{inst.id}"
        os.rename(Store(home).dir(inst.id), legacy)
        (entry,) = trash.entries()
        assert (entry.name, entry.instance_id, entry.declaration) == ("scout", inst.id, None)
        trash.restore(entry)
        assert Store(home).get(inst.id).name == "scout"

    def test_fifo_record_does_not_block(self, home: Home, trash: Trash) -> None:
        """A FIFO where a record belongs is ignored (the entry reads from its name), never waited on."""
        inst = _stored(home)
        entry = trash.move_in(inst.id, name="scout", now=datetime(2026, 3, 1, tzinfo=UTC))
        record = entry.path.with_name(entry.path.name + ".json")
        record.unlink()
        os.mkfifo(record)
        found: list[object] = []
        reader = threading.Thread(target=lambda: found.extend(trash.entries()), daemon=True)
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "listing the trash blocked on a FIFO"
        assert [e.instance_id for e in found] == [inst.id]  # type: ignore[attr-defined]

    def test_unrelated_files_are_not_entries(self, home: Home, trash: Trash) -> None:
        """Files and directories that are not entries are left out of the list and never emptied."""
        root = home.root / TRASH_DIR
        root.mkdir()
        (root / "notes").mkdir()
        (root / "README").write_text("mine\n")
        assert trash.entries() == [] and trash.empty() == []
        assert (root / "notes").is_dir() and (root / "README").exists()
