"""The hierarchy rules: one test per violation, each naming the instances involved."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.errors import HierarchyError
from supervisor.fleet import InstanceDecl, check_hierarchy


def decls(*specs: dict[str, Any]) -> list[InstanceDecl]:
    return [InstanceDecl.model_validate(s) for s in specs]


BOSS = {"name": "boss", "role": "commander"}
CAP = {"name": "cap", "role": "captain", "project": "apollo", "parent": "boss"}
TALON = {"name": "t1", "role": "talon", "project": "apollo", "parent": "cap"}


def refused(*specs: dict[str, Any]) -> str:
    with pytest.raises(HierarchyError) as info:
        check_hierarchy(decls(*specs))
    return str(info.value)


class TestCheckHierarchy:
    def test_valid_tree(self) -> None:
        """A commander, a captain per project and talons under their captain pass."""
        check_hierarchy(
            decls(
                BOSS,
                CAP,
                TALON,
                {"name": "cap2", "role": "captain", "project": "zeus", "parent": "boss"},
                {"name": "t2", "role": "talon", "project": "zeus", "parent": "cap2"},
                {"name": "loner"},
            )
        )

    def test_standalone_only(self) -> None:
        """A fleet of standalone instances needs no commander."""
        check_hierarchy(decls({"name": "a"}, {"name": "b", "parent": "a"}))

    def test_empty(self) -> None:
        """An empty fleet is valid."""
        check_hierarchy([])

    def test_roles_without_commander(self) -> None:
        """Roles without a commander are refused, naming the instances with roles."""
        msg = refused({"name": "cap", "role": "captain", "project": "p"}, {"name": "x"})
        assert "('cap')" in msg and "no" in msg and "commander" in msg

    def test_two_commanders(self) -> None:
        """Two commanders are refused, naming both."""
        msg = refused(BOSS, {"name": "boss2", "role": "commander"})
        assert "exactly one commander" in msg and "'boss', 'boss2'" in msg

    def test_two_captains_one_project(self) -> None:
        """Two captains of one project are refused, naming both and the project."""
        msg = refused(BOSS, CAP, {"name": "cap2", "role": "captain", "project": "apollo", "parent": "boss"})
        assert "project 'apollo' has 2: 'cap', 'cap2'" in msg

    def test_talon_without_parent(self) -> None:
        """A talon needs a parent."""
        msg = refused(BOSS, CAP, {"name": "t1", "role": "talon", "project": "apollo"})
        assert "talon 't1' has no parent" in msg

    def test_talon_parent_not_a_captain(self) -> None:
        """A talon reporting to the commander is refused, naming both."""
        msg = refused(BOSS, {"name": "t1", "role": "talon", "parent": "boss"})
        assert "talon 't1' has parent 'boss', a commander" in msg

    def test_talon_parent_other_project(self) -> None:
        """A talon's captain must lead the talon's own project."""
        msg = refused(BOSS, CAP, {"name": "t1", "role": "talon", "project": "zeus", "parent": "cap"})
        assert "talon 't1' (project 'zeus') has parent 'cap' from another project ('apollo')" in msg

    def test_parent_missing(self) -> None:
        """A parent that is not declared is refused, naming child and parent."""
        msg = refused(BOSS, {**CAP, "parent": "ghost"})
        assert "instance 'cap' has parent 'ghost', which is not declared" in msg

    def test_cycle(self) -> None:
        """Parent links that loop are refused, naming the loop in order."""
        msg = refused(
            {"name": "a", "parent": "b"}, {"name": "b", "parent": "c"}, {"name": "c", "parent": "a"}
        )
        assert "cycle: a → b → c → a" in msg

    def test_self_parent(self) -> None:
        """An instance that is its own parent is a cycle."""
        assert "cycle: a → a" in refused({"name": "a", "parent": "a"})

    def test_all_violations_at_once(self) -> None:
        """Every broken rule is reported in one error."""
        msg = refused({"name": "t1", "role": "talon"}, {"name": "x", "parent": "nobody"})
        assert "commander" in msg and "no parent" in msg and "'nobody'" in msg
