"""``eyriectl projects``: the projects of the fleet file, listed or named by its instances.

It reads ``fleet.yaml`` only, so it answers the same with eyried up or down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from pydantic import BaseModel, Field
from rich.table import Table
from rich.text import Text

from supervisor.cli._app import Cli
from supervisor.cli._render import dumps, printable

if TYPE_CHECKING:
    from supervisor.fleet import FleetFile

__all__ = ["ProjectRow", "project_rows", "projects"]

_DASH = "-"


class ProjectRow(BaseModel):
    """One project: listed under ``projects:`` (``declared``), or only named by instances."""

    id: str
    name: str
    goal: str = ""
    description: str = ""
    instances: list[str] = Field(default_factory=list)
    declared: bool = True


def project_rows(fleet: FleetFile) -> list[ProjectRow]:
    """The listed projects in file order, then those only instances name, in the order they first do."""
    members: dict[str, list[str]] = {}
    for decl in fleet.instances:
        if decl.project:
            members.setdefault(decl.project, []).append(decl.name)
    rows = [
        ProjectRow(
            id=project_id,
            name=project.name or project_id,
            goal=project.goal,
            description=project.description,
            instances=members.get(project_id, []),
        )
        for project_id, project in fleet.projects.items()
    ]
    rows += [
        ProjectRow(id=project_id, name=project_id, instances=names, declared=False)
        for project_id, names in fleet.undeclared_projects().items()
    ]
    return rows


def _table(rows: list[ProjectRow]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("ID", "NAME", "INSTANCES", "GOAL", "FLAGS"):
        table.add_column(
            column, no_wrap=column != "GOAL", justify="right" if column == "INSTANCES" else "left"
        )
    for row in rows:
        table.add_row(
            Text(printable(row.id)),
            Text(printable(row.name)),
            Text(str(len(row.instances))),
            Text(printable(row.goal or _DASH)),
            Text(_DASH if row.declared else "UNDECLARED", style="" if row.declared else "magenta"),
        )
    return table


@click.command(short_help="List the projects: id, name, instance count, goal.")
@click.option(
    "--json", "as_json", is_flag=True, help="A JSON list of project objects (with their instances)."
)
@click.pass_obj
def projects(cli: Cli, as_json: bool) -> None:
    """List the projects of fleet.yaml: ID NAME INSTANCES GOAL FLAGS.

    A project is listed under `projects:` in fleet.yaml (name, goal, description: what its agents find in
    their PROJECT.md), or only named by instances (`project: ID`); the second kind is flagged UNDECLARED:
    its agents get its id as its name and no goal. Reads fleet.yaml only, with eyried up or down.

    \b
    Examples:
      eyriectl projects
      eyriectl ps --project apollo
      eyriectl projects --json | jq '.[] | select(.declared | not) | .id'
    """
    from supervisor.fleet import load_fleet  # the parser loads only for the commands that read the file

    rows = project_rows(load_fleet(cli.home.fleet_file))
    if as_json:
        cli.out.print(dumps(rows), markup=False)
    elif rows:
        cli.out.print(_table(rows))
    else:
        cli.note("no projects (list them under `projects:` in fleet.yaml; see fleet.example.yaml)")
