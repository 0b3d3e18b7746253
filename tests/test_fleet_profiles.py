"""The profiles behind ``eyriectl init`` and writing the first fleet file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from supervisor.errors import NotFound, UnsupportedFramework
from supervisor.fleet import PROFILES, load_fleet, parse_fleet, render_profile, write_initial_fleet
from supervisor.models import HierarchyRole


class TestRenderProfile:
    @pytest.mark.parametrize("framework", ["embedded", "zeroclaw"])
    @pytest.mark.parametrize("profile", PROFILES)
    def test_loads(self, tmp_path: Path, profile: str, framework: str) -> None:
        """Every profile, on either framework, is a valid fleet with every instance on that framework."""
        path = tmp_path / "fleet.yaml"
        path.write_text(render_profile(profile, framework=framework))
        f = load_fleet(path)
        assert f.instances and {d.framework for d in f.instances} == {framework}

    def test_minimal_is_one_standalone(self) -> None:
        """``minimal`` declares one standalone instance."""
        f = parse_fleet(render_profile("minimal"))
        assert len(f.instances) == 1 and f.instances[0].role is HierarchyRole.STANDALONE

    @pytest.mark.parametrize("profile", ["general", "coding", "research"])
    def test_team_profiles_have_a_hierarchy(self, profile: str) -> None:
        """The team profiles have one commander, captains with projects and talons under them."""
        roles = [(d.role, d.project, d.parent) for d in parse_fleet(render_profile(profile)).instances]
        assert [r for r, _, _ in roles].count(HierarchyRole.COMMANDER) == 1
        assert all(p for r, p, _ in roles if r is HierarchyRole.CAPTAIN)
        assert any(r is HierarchyRole.TALON and parent for r, _, parent in roles)

    @pytest.mark.parametrize("profile", ["general", "coding", "research"])
    def test_team_profiles_list_their_projects(self, profile: str) -> None:
        """Every project a team profile's instances name is listed under ``projects:``, with a goal."""
        f = parse_fleet(render_profile(profile))
        assert f.undeclared_projects() == {}
        assert f.projects and all(p.name and p.goal for p in f.projects.values())

    def test_comments_kept(self) -> None:
        """Switching framework changes only the framework values, never the comments."""
        plain, other = render_profile("general"), render_profile("general", framework="openclaw")
        changed = [(a, b) for a, b in zip(plain.splitlines(), other.splitlines(), strict=True) if a != b]
        assert changed and all(a.replace("embedded", "openclaw") == b for a, b in changed)
        assert all("framework:" in a for a, _ in changed)

    def test_unknown_profile(self) -> None:
        """An unknown profile name lists the known ones."""
        with pytest.raises(NotFound, match="minimal, general, coding, research"):
            render_profile("huge")

    def test_unknown_framework(self) -> None:
        """An unknown framework is refused before anything is written."""
        with pytest.raises(UnsupportedFramework):
            render_profile("minimal", framework="nope")


class TestWriteInitialFleet:
    def test_writes_owner_only(self, tmp_path: Path) -> None:
        """The file is created (with its directory), readable by its owner only."""
        path = tmp_path / "home" / "fleet.yaml"
        write_initial_fleet(path, "coding", "embedded")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_fleet(path).decl("tech-lead").role is HierarchyRole.COMMANDER

    def test_refuses_to_overwrite(self, tmp_path: Path) -> None:
        """An existing file is kept unless forced, with a message saying how."""
        path = tmp_path / "fleet.yaml"
        path.write_text("version: 1\n")
        with pytest.raises(FileExistsError, match="already exists; use --force"):
            write_initial_fleet(path, "minimal", "embedded")
        assert path.read_text() == "version: 1\n"

    def test_force_overwrites(self, tmp_path: Path) -> None:
        """``force`` replaces an existing file."""
        path = tmp_path / "fleet.yaml"
        path.write_text("version: 1\n")
        write_initial_fleet(path, "research", "hermes", force=True)
        assert {d.framework for d in load_fleet(path).instances} == {"hermes"}
