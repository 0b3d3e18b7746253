"""An update of a file the store itself last wrote applies the change to the record it kept, without parsing
the file again; any other file (a hand edit, another process's write) is parsed and checked as before."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from supervisor.errors import CorruptInstance
from supervisor.models import Instance
from supervisor.paths import Home
from supervisor.store import INSTANCE_FILE, Store
from supervisor.testing import make_instance


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


def _detail(text: str) -> Callable[[Instance], None]:
    def apply(inst: Instance) -> None:
        inst.status_detail = text

    return apply


class TestKeptRecord:
    def test_repeated_writes_land_on_disk(self, store: Store) -> None:
        """Writes after the first apply to the kept record and each lands in the file."""
        inst = make_instance(store, "kept")
        for i in range(3):
            written = store.update(inst.id, _detail(f"step {i}"), durable=False, keep=True)
            assert written.status_detail == f"step {i}"
            on_disk = json.loads((store.dir(inst.id) / INSTANCE_FILE).read_text())
            assert on_disk["status_detail"] == f"step {i}"

    def test_another_writers_change_is_read_and_kept(self, store: Store, home: Home) -> None:
        """A field another process wrote between two of ours is parsed from the file and stays."""
        inst = make_instance(store, "shared")
        store.update(inst.id, _detail("ours"), durable=False, keep=True)

        def note(i: Instance) -> None:
            i.project_id = "from-eyriectl"

        Store(home).update(inst.id, note)  # another process's store
        written = store.update(inst.id, _detail("ours again"), durable=False, keep=True)
        assert (written.project_id, written.status_detail) == ("from-eyriectl", "ours again")
        on_disk = json.loads((store.dir(inst.id) / INSTANCE_FILE).read_text())
        assert (on_disk["project_id"], on_disk["status_detail"]) == ("from-eyriectl", "ours again")

    def test_a_hand_edit_is_checked_again(self, store: Store) -> None:
        """A file edited by hand after our write to point outside its directory is refused, not applied."""
        inst = make_instance(store, "edited")
        store.update(inst.id, _detail("ours"), durable=False, keep=True)
        path = store.dir(inst.id) / INSTANCE_FILE
        data = json.loads(path.read_text())
        data["workspace_path"] = "/etc"
        path.write_text(json.dumps(data))
        with pytest.raises(CorruptInstance, match="outside the instance directory"):
            store.update(inst.id, _detail("after the edit"), durable=False, keep=True)
        assert json.loads(path.read_text())["workspace_path"] == "/etc"  # refused: nothing written

    def test_a_look_for_problems_leaves_the_parse_for_the_first_scan(self, store: Store) -> None:
        """The daemon's first look for unreadable files keeps its parse for its first scan, which finds the
        same readable instances and leaves the unreadable one out."""
        good = make_instance(store, "good")
        broken = make_instance(store, "broken")
        (store.dir(broken.id) / INSTANCE_FILE).write_text("{ torn")
        problems = store.problems()
        assert [p.path.parent.name for p in problems] == [broken.id]
        index = store.index()
        assert list(index.instances) == ["good"] and index.instances["good"].id == good.id
