"""Editing the fleet file in place: only the intended lines change, invalid results are never written."""

from __future__ import annotations

import difflib
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from supervisor.errors import FleetFileError, HierarchyError, NameExists, NotFound
from supervisor.fleet import (
    InstanceDecl,
    add_instance,
    load_fleet,
    parse_fleet,
    remove_instance,
    set_autostart,
)
from supervisor.models import HierarchyRole

COMMENTED = textwrap.dedent(
    """\
    # Fleet for the lab.
    #   Hand-written; keep the comments.

    version:   1   # odd spacing, kept

    defaults:
      restart:
        policy: "on-failure"     # quoted on purpose
        max_delay: 30s
      # tuned for slow boxes
      health: {interval: 20s,   timeout: 5s}

    frameworks:
      zeroclaw:
        command: ['zeroclaw', daemon, --config-dir, "{instance_dir}"]   # mixed quotes

    instances:
        # The boss.
        -   name: boss          # dash indented four, key three after it
            role: commander
            model: 'claude-sonnet-4'

        # Apollo's captain.
        -   name: cap
            role: captain
            project: apollo
            parent: boss
            # a comment inside the item
            env:
                TOKEN_FILE: "/run/x"   # deeper still

        -   name: t1
            role: talon
            project: apollo
            parent: cap
            autostart: true     # explicit

    # trailing comment
    """
)


def changes(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    """The (tag, removed lines, added lines) of every difference."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [(tag, a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


@pytest.fixture
def commented(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(COMMENTED)
    path.chmod(0o640)
    return path


def talon(name: str, **extra: object) -> InstanceDecl:
    return InstanceDecl.model_validate(
        {"name": name, "role": "talon", "project": "apollo", "parent": "cap", **extra}
    )


class TestAddInstance:
    def test_only_new_lines(self, commented: Path) -> None:
        """Adding inserts the new item after the last one, in the file's own layout; nothing else moves."""
        add_instance(commented, talon("t2"))
        after = commented.read_text()
        new_item = (
            "\n    -   name: t2\n        framework: embedded\n        role: talon\n"
            "        project: apollo\n        parent: cap\n"
        )
        assert after == COMMENTED.replace("# explicit\n", "# explicit\n" + new_item)
        assert [tag for tag, _, _ in changes(COMMENTED, after)] == ["insert"]
        assert load_fleet(commented).decl("t2") == talon("t2")

    def test_mode_kept(self, commented: Path) -> None:
        """The file keeps its permissions across the atomic replace."""
        add_instance(commented, talon("t2"))
        assert stat.S_IMODE(commented.stat().st_mode) == 0o640

    def test_round_trip_of_every_key(self, commented: Path) -> None:
        """Overrides of every kind are written compactly and read back equal."""
        decl = talon(
            "t2",
            framework="zeroclaw",
            persona="engineer",
            model="m-1",
            autostart=False,
            env={"A": "{port}", "B": "yes"},
            command=["zeroclaw", "daemon", "--port", "{port}"],
            ready={"kind": "log", "pattern": "ready on {port}"},
            live={"kind": "tcp"},
            stop_signal="SIGINT",
            stop_timeout="1500ms",
            restart={"max_delay": "5m", "policy": "always"},
            health={"interval": 0.25},
            logs={"backups": 1},
        )
        add_instance(commented, decl)
        assert load_fleet(commented).decl("t2") == decl
        text = commented.read_text()
        assert "stop_timeout: 1500ms" in text and "restart: {policy: always, max_delay: 5m}" in text
        assert "health: {interval: 250ms}" in text and "env: {A: '{port}', B: 'yes'}" in text

    def test_compact(self, tmp_path: Path) -> None:
        """A default instance is written as its name and framework only."""
        path = tmp_path / "fleet.yaml"
        path.write_text("version: 1\ninstances:\n  - name: a\n")
        add_instance(path, InstanceDecl(name="b"))
        assert (
            path.read_text() == "version: 1\ninstances:\n  - name: a\n  - name: b\n    framework: embedded\n"
        )

    def test_name_exists(self, commented: Path) -> None:
        """A declared name is refused with its line; the file is untouched."""
        with pytest.raises(NameExists, match=r"'cap' is already declared \(line 24\)"):
            add_instance(commented, talon("cap"))
        assert commented.read_text() == COMMENTED

    def test_hierarchy_refused(self, commented: Path) -> None:
        """A second commander is refused before anything is written."""
        with pytest.raises(HierarchyError, match=r"adding 'boss2' refused: .*'boss', 'boss2'"):
            add_instance(commented, InstanceDecl(name="boss2", role=HierarchyRole.COMMANDER))
        assert commented.read_text() == COMMENTED

    def test_invalid_result_refused(self, commented: Path) -> None:
        """An instance on an unknown framework is refused with the located error; the file is untouched."""
        with pytest.raises(FleetFileError, match="would make the file invalid: unknown framework") as info:
            add_instance(commented, InstanceDecl(name="x", framework="nope"))
        assert info.value.key == "instances[3].framework"
        assert commented.read_text() == COMMENTED

    def test_invalid_file_not_touched(self, commented: Path) -> None:
        """An already invalid file is reported as it is, with its own line, and left alone."""
        broken = COMMENTED.replace("max_delay: 30s", "max_delay: later")
        commented.write_text(broken)
        with pytest.raises(FleetFileError) as info:
            add_instance(commented, talon("t2"))
        assert (info.value.line, info.value.key) == (9, "defaults.restart.max_delay")
        assert commented.read_text() == broken

    def test_missing_file_created(self, tmp_path: Path) -> None:
        """Adding to a missing file creates a valid one, owner-only."""
        path = tmp_path / "sub" / "fleet.yaml"
        add_instance(path, InstanceDecl(name="solo"))
        assert path.read_text() == "version: 1\ninstances:\n  - name: solo\n    framework: embedded\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_comment_only_file(self, tmp_path: Path) -> None:
        """A file of comments only keeps them and gains a version and the instance."""
        path = tmp_path / "fleet.yaml"
        path.write_text("# mine\n")
        add_instance(path, InstanceDecl(name="solo"))
        assert path.read_text().startswith("# mine\nversion: 1\ninstances:\n  - name: solo\n")

    @pytest.mark.parametrize(
        ("before", "after"),
        [
            ("version: 1\n", "version: 1\ninstances:\n  - name: a\n    framework: embedded\n"),
            ("version: 1\ninstances:\n", "version: 1\ninstances:\n  - name: a\n    framework: embedded\n"),
            (
                "version: 1\ninstances: []   # none yet\n# end\n",
                "version: 1\ninstances:   # none yet\n  - name: a\n    framework: embedded\n# end\n",
            ),
            ("version: 1\ninstances: ~", "version: 1\ninstances:\n  - name: a\n    framework: embedded\n"),
        ],
    )
    def test_empty_instances(self, tmp_path: Path, before: str, after: str) -> None:
        """No ``instances`` key, a null one or ``[]`` all become a block list with the new item."""
        path = tmp_path / "fleet.yaml"
        path.write_text(before)
        add_instance(path, InstanceDecl(name="a"))
        assert path.read_text() == after

    def test_flow_list(self, tmp_path: Path) -> None:
        """A flow-style instance list is edited by a round-trip dump that keeps its comments."""
        path = tmp_path / "fleet.yaml"
        path.write_text("# top\nversion: 1\ninstances: [{name: a}]  # flow\n")
        add_instance(path, InstanceDecl(name="b"))
        text = path.read_text()
        assert text.startswith("# top\n") and "# flow" in text
        assert load_fleet(path).names() == ["a", "b"]


class TestRemoveInstance:
    def test_only_its_lines(self, commented: Path) -> None:
        """Removing deletes the item's lines (and one of the blank lines around it), nothing else."""
        remove_instance(commented, "t1")
        diff = changes(COMMENTED, commented.read_text())
        assert len(diff) == 1 and diff[0][0] == "delete"
        removed = "".join(diff[0][1])
        assert "name: t1" in removed and "explicit" in removed
        assert "trailing comment" not in removed and "TOKEN_FILE" not in removed
        assert load_fleet(commented).names() == ["boss", "cap"]

    def test_middle_item_keeps_neighbours(self, tmp_path: Path) -> None:
        """Between blank-separated items, one blank line remains and the next item's comment stays."""
        path = tmp_path / "fleet.yaml"
        path.write_text(
            "version: 1\ninstances:\n  - name: a\n\n  - name: b\n    model: x\n\n  # about c\n  - name: c\n"
        )
        remove_instance(path, "b")
        assert path.read_text() == "version: 1\ninstances:\n  - name: a\n\n  # about c\n  - name: c\n"

    def test_last_instance(self, tmp_path: Path) -> None:
        """Removing the only instance leaves an empty, valid list."""
        path = tmp_path / "fleet.yaml"
        path.write_text("version: 1\ninstances:\n  - name: a  # gone soon\n")
        remove_instance(path, "a")
        assert path.read_text() == "version: 1\ninstances:\n"
        assert load_fleet(path).instances == []

    def test_not_found(self, commented: Path) -> None:
        """An undeclared name is `NotFound`."""
        with pytest.raises(NotFound, match="'ghost'"):
            remove_instance(commented, "ghost")

    def test_hierarchy_refused(self, commented: Path) -> None:
        """Removing a captain its talon reports to is refused, naming both."""
        with pytest.raises(HierarchyError, match=r"removing 'cap' refused: .*'t1' has parent 'cap'"):
            remove_instance(commented, "cap")
        assert commented.read_text() == COMMENTED

    def test_missing_file(self, tmp_path: Path) -> None:
        """Removing from a missing file says the file is missing."""
        with pytest.raises(FleetFileError, match="not found"):
            remove_instance(tmp_path / "fleet.yaml", "a")

    def test_dash_on_its_own_line(self, tmp_path: Path) -> None:
        """An item whose dash stands alone on a line is removed whole."""
        path = tmp_path / "fleet.yaml"
        path.write_text("version: 1\ninstances:\n  -\n    name: a\n  -   # b\n    name: b\n")
        remove_instance(path, "a")
        assert path.read_text() == "version: 1\ninstances:\n  -   # b\n    name: b\n"

    def test_flow_list(self, tmp_path: Path) -> None:
        """A flow-style list falls back to a round-trip dump."""
        path = tmp_path / "fleet.yaml"
        path.write_text("version: 1\ninstances: [{name: a}, {name: b}]\n")
        remove_instance(path, "a")
        assert load_fleet(path).names() == ["b"]


class TestSetAutostart:
    def test_changes_value_in_place(self, commented: Path) -> None:
        """An existing ``autostart`` value is replaced; its comment and alignment stay."""
        set_autostart(commented, "t1", False)
        assert changes(COMMENTED, commented.read_text()) == [
            (
                "replace",
                ["        autostart: true     # explicit\n"],
                ["        autostart: false     # explicit\n"],
            )
        ]

    def test_inserts_line(self, commented: Path) -> None:
        """Disabling an instance without the key adds one line under its name."""
        set_autostart(commented, "boss", False)
        assert changes(COMMENTED, commented.read_text()) == [("insert", [], ["        autostart: false\n"])]
        assert COMMENTED.splitlines()[18].strip().startswith("-   name: boss")
        assert commented.read_text().splitlines()[19] == "        autostart: false"
        assert load_fleet(commented).decl("boss").autostart is False

    def test_no_change_no_write(self, commented: Path) -> None:
        """Setting the value it already has does not rewrite the file."""
        before = commented.stat()
        set_autostart(commented, "boss", True)
        set_autostart(commented, "t1", True)
        after = commented.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    def test_enable_again(self, commented: Path) -> None:
        """Disable then enable leaves ``autostart: true`` on the inserted line."""
        set_autostart(commented, "cap", False)
        set_autostart(commented, "cap", True)
        assert load_fleet(commented).decl("cap").autostart is True

    def test_not_found(self, commented: Path) -> None:
        """An undeclared name is `NotFound`."""
        with pytest.raises(NotFound):
            set_autostart(commented, "ghost", False)

    def test_flow_item(self, tmp_path: Path) -> None:
        """A flow-style item gets the key through a round-trip dump."""
        path = tmp_path / "fleet.yaml"
        path.write_text("version: 1\ninstances:\n  - {name: a}\n")
        set_autostart(path, "a", False)
        assert load_fleet(path).decl("a").autostart is False


_ADDER = """
import sys
from supervisor.fleet import InstanceDecl, add_instance
path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
for i in range(count):
    add_instance(path, InstanceDecl(name=f"{prefix}-{i}"))
"""


class TestConcurrentEdits:
    def test_two_processes_lose_nothing(self, tmp_path: Path) -> None:
        """Two processes adding 50 instances each to one file: all 100 are there, the file valid."""
        path = tmp_path / "fleet.yaml"
        path.write_text("# shared\nversion: 1\ninstances:\n")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _ADDER, str(path), prefix, "50"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for prefix in ("left", "right")
        ]
        try:
            results = [p.communicate(timeout=90) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert [p.returncode for p in procs] == [0, 0], results
        names = load_fleet(path).names()
        assert sorted(names) == sorted(f"{side}-{i}" for side in ("left", "right") for i in range(50))
        assert path.read_text().startswith("# shared\n")
        assert parse_fleet(path.read_text()).resolve_all().keys() == set(names)
