"""Projects: the fleet file's ``projects:``, the ``PROJECT.md`` eyried keeps, ``eyriectl projects``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from supervisor.errors import FleetFileError, NotFound
from supervisor.fleet import parse_fleet, remove_project, render_profile, set_project
from supervisor.models import Instance, TemplateContext
from supervisor.paths import Home
from supervisor.project_file import PROJECT_FILE, ProjectContext, render_project_file, write_project_file
from supervisor.systemd._agent_checks import projects_check
from tests._cli import eyriectl
from tests._daemon import FAST_DEFAULTS, running_daemon, wait_for

PROJECTS = """\
projects:
  apollo:
    name: Apollo
    goal: Land on the moon
    description: |
      Guidance and telemetry.
"""

TEAM = """\
instances:
  - name: apollo-lead
    framework: embedded
    project: apollo
  - name: apollo-hand
    framework: embedded
    project: apollo
    parent: apollo-lead
  - name: loner
    framework: embedded
"""


def fleet_text(projects: str = PROJECTS, frameworks: str = "", instances: str = TEAM) -> str:
    return f"version: 1\n{FAST_DEFAULTS}{frameworks}{projects}{instances}"


class TestSchema:
    def test_listed_project_reaches_its_instances(self) -> None:
        """An instance of a listed project resolves with the project's name, goal and description."""
        resolved = parse_fleet(fleet_text()).resolve("apollo-hand")
        assert (resolved.project_name, resolved.project_goal) == ("Apollo", "Land on the moon")
        assert resolved.project_description == "Guidance and telemetry."
        assert resolved.project_context().parent_agent == "Apollo Lead (apollo-lead)"

    def test_unlisted_project_loads_with_a_warning(self) -> None:
        """A project no ``projects:`` entry lists still loads: its name is its id, no goal, and a warning."""
        fleet = parse_fleet(fleet_text(projects=""))
        resolved = fleet.resolve("apollo-lead")
        assert (resolved.project_name, resolved.project_goal) == ("apollo", "")
        assert fleet.undeclared_projects() == {"apollo": ["apollo-lead", "apollo-hand"]}
        assert len(fleet.project_warnings()) == 1 and "'apollo'" in fleet.project_warnings()[0]

    def test_every_key_is_optional(self) -> None:
        """``apollo:`` with no keys (or ``{}``) is a listed project named by its id."""
        for entry in ("  apollo:\n", "  apollo: {}\n"):
            fleet = parse_fleet(fleet_text(projects="projects:\n" + entry))
            assert fleet.undeclared_projects() == {}
            assert fleet.resolve("apollo-lead").project_name == "apollo"

    @pytest.mark.parametrize(
        ("entry", "line", "key", "reason"),
        [
            ("  bad id!: {name: X}\n", 8, "projects.bad id!", "may use only letters"),
            ("  apollo: {owner: me}\n", 8, "projects.apollo.owner", "allowed here: description, goal, name"),
            ("  apollo:\n    goal: |\n      two\n      lines\n", 9, "projects.apollo.goal", "one line"),
            (f"  apollo: {{name: {'n' * 81}}}\n", 8, "projects.apollo.name", "at most 80"),
            (f"  apollo: {{description: {'d' * 4001}}}\n", 8, "projects.apollo.description", "at most 4000"),
            ("  apollo: [a, b]\n", 8, "projects.apollo", "valid dictionary"),
        ],
    )
    def test_bad_entries_name_file_line_and_key(self, entry: str, line: int, key: str, reason: str) -> None:
        """A bad ``projects:`` entry is refused with the file, the line and the key."""
        with pytest.raises(FleetFileError) as info:
            parse_fleet(fleet_text(projects="projects:\n" + entry), path="fleet.yaml")
        err = info.value
        assert (err.line, err.key) == (line, key), str(err)
        assert reason in err.reason
        assert str(err).startswith(f"fleet.yaml:{line}: {key}: ")


class TestEdit:
    def test_set_changes_only_that_line(self, tmp_path: Path) -> None:
        """A new goal rewrites the project's own lines; every other byte, comments included, stays."""
        path = tmp_path / "fleet.yaml"
        path.write_text(render_profile("general"))
        before = path.read_text()
        set_project(path, "operations", {"goal": "Keep it all up"})
        changed = [
            (a, b) for a, b in zip(before.splitlines(), path.read_text().splitlines(), strict=True) if a != b
        ]
        assert changed == [
            (
                "    goal: Keep the services this team runs healthy, and say early when one is not",
                "    goal: Keep it all up",
            )
        ]

    def test_set_adds_the_section_above_instances(self, tmp_path: Path) -> None:
        """A file without ``projects:`` gets one above ``instances:`` and the comments leading into it."""
        path = tmp_path / "fleet.yaml"
        path.write_text(render_profile("minimal"))
        before = path.read_text()
        set_project(path, "solo", {"goal": "Be useful", "description": "One.\nTwo."})
        after = path.read_text()
        block = "projects:\n  solo:\n    goal: Be useful\n    description: |\n      One.\n      Two.\n\n"
        assert after.replace(block, "") == before
        assert after.index(block) < after.index("instances:")
        assert parse_fleet(after).projects["solo"].description == "One.\nTwo."

    def test_invalid_value_changes_nothing(self, tmp_path: Path) -> None:
        """A goal past its bound is refused with the file, line and key; the file is as it was."""
        path = tmp_path / "fleet.yaml"
        path.write_text(render_profile("general"))
        before = path.read_text()
        with pytest.raises(FleetFileError) as info:
            set_project(path, "research", {"goal": "g" * 501})
        assert info.value.key == "projects.research.goal" and "at most 500" in info.value.reason
        assert path.read_text() == before

    def test_remove_and_set_back_round_trip(self, tmp_path: Path) -> None:
        """Removing a project deletes its lines (its instances then name an unlisted project); setting it
        again in the same place restores the file; an unlisted one is `NotFound`."""
        path = tmp_path / "fleet.yaml"
        path.write_text(render_profile("coding"))
        before = path.read_text()
        remove_project(path, "frontend")
        assert "frontend:" not in path.read_text().split("instances:")[0]
        assert list(parse_fleet(path.read_text()).undeclared_projects()) == ["frontend"]
        set_project(path, "frontend", {"name": "Frontend", "goal": "What users see, fast and accessible"})
        assert path.read_text() == before
        with pytest.raises(NotFound):
            remove_project(path, "nope")


class TestProjectFile:
    @staticmethod
    def ctx(project: ProjectContext) -> TemplateContext:
        return TemplateContext(name="hand", display_name="Hand", **project.template_fields())

    def test_renders_project_goal_and_parent(self) -> None:
        """PROJECT.md names the project, its goal, its description and the parent by display name and name."""
        text = render_project_file(
            self.ctx(
                ProjectContext(
                    project_id="apollo",
                    project_name="Apollo",
                    goal="Land",
                    description="Long text.",
                    parent_name="apollo-lead",
                )
            )
        )
        assert text is not None
        assert (
            "- **Project:** Apollo\n- **Goal:** Land\n- **Reports to:** Apollo Lead (apollo-lead)\n" in text
        )
        assert text.endswith("Long text.\n")

    def test_none_without_project_or_parent(self) -> None:
        """An instance with neither a project nor a parent has no PROJECT.md."""
        assert render_project_file(self.ctx(ProjectContext())) is None

    def test_write_replaces_a_planted_symlink(self, tmp_path: Path) -> None:
        """A symlink an agent plants at PROJECT.md is replaced, never followed."""
        outside = tmp_path / "outside.txt"
        outside.write_text("mine")
        (tmp_path / PROJECT_FILE).symlink_to(outside)
        assert write_project_file(tmp_path, "# PROJECT.md\n")
        assert outside.read_text() == "mine"
        assert not (tmp_path / PROJECT_FILE).is_symlink()
        assert (tmp_path / PROJECT_FILE).read_text() == "# PROJECT.md\n"

    def test_write_only_on_change_and_removes_when_none(self, tmp_path: Path) -> None:
        """The same text is not written again; None removes the file."""
        assert write_project_file(tmp_path, "a\n")
        assert not write_project_file(tmp_path, "a\n")
        assert write_project_file(tmp_path, None)
        assert not (tmp_path / PROJECT_FILE).exists()
        assert not write_project_file(tmp_path, None)


def _workspace(home: Path, inst: dict[str, object]) -> Path:
    return home / "instances" / str(inst["id"]) / "workspace"


def _reload(home: Path) -> dict[str, Any]:
    result = eyriectl(home, "reload", "--json")
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


class TestDaemon:
    def test_goal_change_rewrites_project_file_live_and_keeps_identity(self, tmp_path: Path) -> None:
        """``eyriectl projects set`` changes a goal and reloads: the new goal is in PROJECT.md, embedded
        (reads_files: live) keeps its pid, and the identity files, the agent's own, keep the agent's edits."""
        with running_daemon(tmp_path, fleet_text()) as d:
            pids = d.wait_running("apollo-lead", "apollo-hand", "loner")
            hand = _workspace(tmp_path, d.instance("apollo-hand"))
            project = (hand / PROJECT_FILE).read_text()
            assert "Land on the moon" in project and "Apollo Lead (apollo-lead)" in project
            assert "PROJECT.md" in (hand / "IDENTITY.md").read_text()
            assert not (_workspace(tmp_path, d.instance("loner")) / PROJECT_FILE).exists()
            (hand / "IDENTITY.md").write_text("# my own notes\n")

            edited = eyriectl(tmp_path, "projects", "set", "apollo", "--goal", "Orbit Mars")
            assert edited.returncode == 0, edited.stderr
            assert "updated live: apollo-lead, apollo-hand" in edited.stdout
            assert "restarted" not in edited.stdout and "warning" not in edited.stdout
            assert "Orbit Mars" in (hand / PROJECT_FILE).read_text()
            assert (hand / "IDENTITY.md").read_text() == "# my own notes\n"
            assert {n: d.instance(n)["pid"] for n in pids} == pids

    def test_framework_reading_files_at_start_is_restarted(self, tmp_path: Path) -> None:
        """With ``reads_files: at_start``, a new PROJECT.md restarts the project's instances only."""
        at_start = "frameworks:\n  embedded: {reads_files: at_start}\n"
        with running_daemon(tmp_path, fleet_text(frameworks=at_start)) as d:
            pids = d.wait_running("apollo-lead", "apollo-hand", "loner")
            d.write_fleet(
                fleet_text(frameworks=at_start, projects=PROJECTS.replace("Apollo\n", "Apollo Program\n"))
            )
            answer = _reload(tmp_path)
            assert sorted(answer["restarted"]) == ["apollo-hand", "apollo-lead"]
            for name in ("apollo-lead", "apollo-hand"):
                d.wait_new_pid(name, pids[name])
            assert d.instance("loner")["pid"] == pids["loner"]
            lead = _workspace(tmp_path, d.instance("apollo-lead"))
            assert "- **Project:** Apollo Program\n" in (lead / PROJECT_FILE).read_text()

    def test_unlisted_project_warns_and_moves_are_recorded(self, tmp_path: Path) -> None:
        """A project ``projects:`` does not list is a warning in the reload answer and in doctor; moving an
        instance to it rewrites its PROJECT.md and its record, and ``ps --project`` follows."""
        with running_daemon(tmp_path, fleet_text()) as d:
            d.wait_running("apollo-lead", "apollo-hand", "loner")
            d.write_fleet(fleet_text(instances=TEAM + "    project: gemini\n"))
            answer = _reload(tmp_path)
            assert answer["updated"] == ["loner"]
            assert len(answer["warnings"]) == 1 and "'gemini'" in answer["warnings"][0]
            loner = d.instance("loner")
            assert loner["project_id"] == "gemini"
            assert "- **Project:** gemini\n" in (_workspace(tmp_path, loner) / PROJECT_FILE).read_text()
            check = projects_check(Home(tmp_path))
            assert check is not None and check.ok and check.warning and "'gemini'" in check.detail

            listed = eyriectl(tmp_path, "ps", "--project", "gemini", "--json")
            assert listed.returncode == 0, listed.stderr
            assert [v["name"] for v in json.loads(listed.stdout)] == ["loner"]


class TestCli:
    def test_projects_lists_listed_and_unlisted(self, tmp_path: Path) -> None:
        """``eyriectl projects --json`` lists each project with its instances; an unlisted one is flagged,
        and it answers with eyried down."""
        (tmp_path / "fleet.yaml").write_text(fleet_text(instances=TEAM + "    project: gemini\n"))
        result = eyriectl(tmp_path, "projects", "--json")
        assert result.returncode == 0, result.stderr
        rows = {row["id"]: row for row in json.loads(result.stdout)}
        assert rows["apollo"]["goal"] == "Land on the moon"
        assert rows["apollo"]["instances"] == ["apollo-lead", "apollo-hand"]
        assert rows["gemini"] == {
            "id": "gemini",
            "name": "gemini",
            "goal": "",
            "description": "",
            "instances": ["loner"],
            "declared": False,
        }
        table = eyriectl(tmp_path, "projects")
        assert table.returncode == 0
        assert "UNDECLARED" in table.stdout and "Land on the moon" in table.stdout

    def test_projects_without_a_fleet_file(self, tmp_path: Path) -> None:
        """No fleet file: exit 1 with a message saying how to make one."""
        result = eyriectl(tmp_path, "projects")
        assert result.returncode == 1
        assert "eyriectl init" in result.stderr

    def test_ps_project_filter_offline(self, tmp_path: Path) -> None:
        """``ps --project`` filters the declared instances with eyried down too (exit 3)."""
        (tmp_path / "fleet.yaml").write_text(fleet_text())
        result = eyriectl(tmp_path, "ps", "--project", "apollo", "--json")
        assert result.returncode == 3
        assert [v["name"] for v in json.loads(result.stdout)] == ["apollo-lead", "apollo-hand"]


def test_record_written_by_provisioning_names_the_project(tmp_path: Path) -> None:
    """The provisioned record carries the project id; its PROJECT.md is the one eyried renders later."""
    text = textwrap.dedent(
        """\
        version: 1
        projects: {apollo: {goal: Land}}
        instances:
          - {name: solo, project: apollo}
        """
    )
    (tmp_path / "fleet.yaml").write_text(text)
    with running_daemon(tmp_path, text) as d:
        d.wait_running("solo")
        inst = Instance.model_validate(d.instance("solo"))
        assert inst.project_id == "apollo"
        project = _workspace(tmp_path, d.instance("solo")) / PROJECT_FILE
        wait_for(project.exists, 5, "PROJECT.md")
        assert "- **Goal:** Land\n" in project.read_text()
