"""Files under the home are input: FIFOs, devices, symlink loops, alias bombs, planted paths and stray
directories are refused with a clear error, promptly, and never taken for something they are not."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import pytest

from supervisor._safe_read import FileTooLarge, NotRegularFile, read_bytes
from supervisor.cli._plain import printable, ps_lines, status_lines
from supervisor.control.schema import DaemonStatus, InstanceView
from supervisor.errors import CorruptInstance, FleetFileError, NameExists
from supervisor.fleet import load_fleet, parse_fleet
from supervisor.fleet._yaml import MAX_DEPTH, fast_load
from supervisor.models import Instance, new_instance_id, utcnow
from supervisor.paths import Home
from supervisor.store import INSTANCE_FILE, Store
from supervisor.systemd.doctor import check_instances
from tests._cli import eyriectl

BOMB = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)
).replace("*a", "x")
"""Nine levels of nine aliases each: 9**9 (387 million) leaves once expanded, from under 500 bytes."""


def _instance(name: str, **fields: object) -> Instance:
    return Instance.model_validate(
        {"id": new_instance_id(), "name": name, "framework": "embedded", "created_at": utcnow(), **fields}
    )


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


class TestSafeRead:
    def test_fifo_is_refused_at_once(self, tmp_path: Path) -> None:
        """A FIFO with no writer is refused without waiting for one (a plain open blocks forever)."""
        fifo = tmp_path / "fleet.yaml"
        os.mkfifo(fifo)
        with pytest.raises(NotRegularFile, match="a FIFO"):
            read_bytes(fifo, limit=1024)

    def test_device_is_refused(self, tmp_path: Path) -> None:
        """A symlink to /dev/zero is refused, not read until memory runs out."""
        (tmp_path / "zero").symlink_to("/dev/zero")
        with pytest.raises(NotRegularFile, match="character device"):
            read_bytes(tmp_path / "zero", limit=1024)

    def test_symlink_loop_is_an_oserror(self, tmp_path: Path) -> None:
        """A self-referencing symlink is an OSError (ELOOP) like any other unreadable file."""
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        with pytest.raises(OSError):
            read_bytes(tmp_path / "loop", limit=1024)

    def test_size_limit(self, tmp_path: Path) -> None:
        """A file over the limit is refused; one at the limit is read whole."""
        path = tmp_path / "big"
        path.write_bytes(b"x" * 101)
        with pytest.raises(FileTooLarge):
            read_bytes(path, limit=100)
        assert read_bytes(path, limit=101) == b"x" * 101

    def test_symlink_refused_when_not_followed(self, tmp_path: Path) -> None:
        """``follow_symlinks=False`` refuses a symlink at the last component."""
        (tmp_path / "real").write_text("x")
        (tmp_path / "link").symlink_to(tmp_path / "real")
        assert read_bytes(tmp_path / "link", limit=10) == b"x"
        with pytest.raises(OSError):
            read_bytes(tmp_path / "link", limit=10, follow_symlinks=False)


class TestFleetFileHostile:
    @pytest.mark.parametrize("kind", ["fifo", "dev-zero", "self-symlink"])
    def test_unreadable_fleet_file_is_a_fleet_file_error(self, tmp_path: Path, kind: str) -> None:
        """A FIFO, a /dev/zero symlink or a symlink loop at fleet.yaml is a FleetFileError, promptly."""
        path = tmp_path / "fleet.yaml"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dev-zero":
            path.symlink_to("/dev/zero")
        else:
            path.symlink_to(path)
        with pytest.raises(FleetFileError, match=r"fleet\.yaml"):
            load_fleet(path)

    def test_alias_bomb_is_refused_quickly_and_small(self) -> None:
        """A 'billion laughs' fleet file is refused in milliseconds, without building its expansion."""
        assert len(BOMB) < 500
        tracemalloc.start()
        began = time.monotonic()
        try:
            with pytest.raises(FleetFileError, match="aliases expand"):
                parse_fleet(BOMB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert time.monotonic() - began < 1.0
        assert peak < 20 * 1024 * 1024

    @pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {k: *a}\n"], ids=["seq", "map"])
    def test_alias_to_its_own_container_is_refused(self, text: str) -> None:
        """An alias inside the node it names (a cycle) is refused."""
        with pytest.raises(FleetFileError, match="refers to a node that contains it"):
            parse_fleet(text)

    @pytest.mark.parametrize(
        "text",
        [
            "[" * 100_000,
            "a: " + "[" * 100_000 + "]" * 100_000,
            "- " * 100_000 + "x\n",
            "a: " + "{b: " * 50_000,
        ],
        ids=["flow-seq", "closed", "block-seq", "flow-map"],
    )
    def test_deep_nesting_is_refused_not_a_crash(self, text: str) -> None:
        """Nesting deeper than MAX_DEPTH is an error (libyaml's composer overflowed the C stack)."""
        with pytest.raises(FleetFileError, match=f"nested more than {MAX_DEPTH}"):
            parse_fleet(text)

    def test_anchors_within_bounds_still_work(self) -> None:
        """Ordinary anchors, aliases and merge keys load as before."""
        data = fast_load("base: &b {x: 1}\ncopy: *b\nm:\n  <<: *b\n  y: 2\n")
        assert data == {"base": {"x": 1}, "copy": {"x": 1}, "m": {"x": 1, "y": 2}}


class TestStoreHostile:
    @pytest.mark.parametrize("kind", ["fifo", "dev-zero", "symlink"])
    def test_planted_instance_json_is_a_problem_not_a_hang(self, store: Store, kind: str) -> None:
        """A FIFO, a /dev/zero symlink or any symlink at instance.json is reported, never read."""
        inst = _instance("alpha")
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        real = path.read_text()
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dev-zero":
            path.symlink_to("/dev/zero")
        else:
            (store.root.parent / "elsewhere.json").write_text(real)
            path.symlink_to(store.root.parent / "elsewhere.json")
        assert store.list() == []
        [problem] = store.problems()
        assert problem.path == path
        with pytest.raises(CorruptInstance):
            store.get(inst.id)

    def test_truncated_instance_json_keeps_its_name_taken(self, store: Store) -> None:
        """A truncated instance.json still holds its name: no second instance of that name is created."""
        inst = _instance("alpha")
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        path.write_bytes(path.read_bytes()[:100])  # cut after the name, as a crash mid-write leaves it
        assert store.name_exists("alpha")
        with pytest.raises(NameExists, match="cannot be read"):
            store.create(_instance("alpha"))
        with pytest.raises(NameExists):
            store.get_by_name("alpha")

    def test_stray_directory_with_a_taken_name_is_contested(self, store: Store) -> None:
        """Two directories with one name: the lookup refuses to pick one, whichever is newer."""
        real = _instance("alpha")
        store.save(real)
        stray = _instance("alpha")
        store.save(stray)
        index = store.index()
        assert "alpha" not in index.instances
        assert real.id in index.contested["alpha"] and stray.id in index.contested["alpha"]
        with pytest.raises(NameExists, match="2 instance directories"):
            store.get_by_name("alpha")

    def test_symlinked_instance_directory_is_reported_and_removed_as_a_link(
        self, store: Store, tmp_path: Path
    ) -> None:
        """A symlinked instance directory is reported, never entered; delete removes the link only."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "keep").write_text("precious")
        instance_id = new_instance_id()
        store.root.mkdir(parents=True, exist_ok=True)
        (store.root / instance_id).symlink_to(outside)
        assert store.list() == []
        assert "symlink" in store.problems()[0].reason
        store.delete(instance_id)
        assert not (store.root / instance_id).exists() and (outside / "keep").read_text() == "precious"

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("config_path", "/etc/cron.d/evil"),
            ("config_path", "../../../outside.toml"),
            ("workspace_path", "/tmp"),
            ("framework", "../../.."),
        ],
    )
    def test_paths_leading_out_of_the_instance_are_refused(
        self, store: Store, field: str, value: str
    ) -> None:
        """config_path, workspace_path and framework may not lead out of instances/<id>/."""
        inst = _instance("alpha")
        store.save(inst)
        path = store.dir(inst.id) / INSTANCE_FILE
        data = json.loads(path.read_text())
        data[field] = value
        path.write_text(json.dumps(data))
        with pytest.raises(CorruptInstance, match=field):
            store.get(inst.id)
        assert store.list() == [] and store.name_exists("alpha")

    def test_symlinked_config_leading_out_is_refused(self, store: Store, tmp_path: Path) -> None:
        """A config path inside the directory that is a symlink to a file outside it is refused."""
        inst = _instance("alpha")
        store.save(inst)
        directory = store.dir(inst.id)
        (directory / "config.toml").symlink_to(tmp_path / "secret")
        store.update(inst.id, lambda i: setattr(i, "config_path", str(directory / "config.toml")))
        with pytest.raises(CorruptInstance, match="outside the instance directory"):
            store.get(inst.id)

    def test_paths_inside_and_of_a_moved_home_are_kept(self, store: Store) -> None:
        """A path inside the instance, or into the same instance of a home since moved, is accepted."""
        inst = _instance("alpha")
        store.save(inst)
        directory = store.dir(inst.id)
        store.update(inst.id, lambda i: setattr(i, "workspace_path", str(directory / "workspace")))
        store.update(inst.id, lambda i: setattr(i, "config_path", f"/old/instances/{inst.id}/config.toml"))
        got = store.get(inst.id)
        assert got.config_path == str(directory / "config.toml")
        assert got.workspace_path == str(directory / "workspace")


class TestPrintable:
    def test_escape_sequences_from_a_process_name_are_shown_as_text(self) -> None:
        """A process name with terminal escapes reaches the ps table and status as visible escapes."""
        evil = "held by pid 7 (\x1b]0;pwned\x07\x1b[2J\u202e)"
        view = InstanceView.model_validate(
            {"name": "alpha", "id": "x", "framework": "embedded", "status": "error", "status_detail": evil}
        )
        table = ps_lines([view.model_dump(mode="json")], width=250, colour=True)
        assert "error (held by pid 7 (\\x1b]0;pwned\\x07\\x1b[2J\\u202e))" in table[1]
        assert "\x1b]" not in table[1] and "\u202e" not in table[1]
        status = DaemonStatus.model_validate(
            {
                "pid": 1,
                "version": "1",
                "home": "/h",
                "fleet_file": "/h/f",
                "started_at": utcnow(),
                "uptime_seconds": 1,
                "problems": [f"x: {evil}\nfake"],
            }
        )
        text = "\n".join(status_lines(status.model_dump(mode="json")))
        assert "\x1b" not in text and "\u202e" not in text and "\\x0afake" in text

    def test_newlines_kept_only_when_asked(self) -> None:
        """``lines=True`` keeps newlines and tabs, and still escapes every other control character."""
        assert printable("a\nb\tc\x1b") == "a\\x0ab\\x09c\\x1b"
        assert printable("a\nb\tc\x1b", lines=True) == "a\nb\tc\\x1b"


class TestDoctor:
    def test_doctor_names_unreadable_and_duplicated_instances(self, store: Store, home: Home) -> None:
        """doctor's instances check fails, with a fix, for a torn instance.json and for a name held twice."""
        first = _instance("alpha")
        store.save(first)
        assert check_instances(home).ok
        store.save(_instance("alpha"))
        torn = _instance("beta")
        store.save(torn)
        path = store.dir(torn.id) / INSTANCE_FILE
        path.write_bytes(path.read_bytes()[:100])
        check = check_instances(home)
        assert not check.ok and check.fix
        assert "2 instance directories" in check.detail and str(path) in check.detail


class TestLogsCommand:
    def test_fifo_log_is_refused_not_waited_on(self, store: Store, home: Home) -> None:
        """``eyriectl logs`` on an instance whose log is a FIFO exits 1 at once, naming the file."""
        inst = _instance("alpha")
        store.save(inst)
        logs = store.dir(inst.id) / "logs"
        logs.mkdir()
        os.mkfifo(logs / "embedded.log")
        result = eyriectl(home.root, "logs", "alpha", timeout=20)
        assert result.returncode == 1 and "not a regular file" in result.stderr
