"""``eyriectl projects``: the projects of the fleet file, listed, set and removed.

Listing reads ``fleet.yaml`` only, so it answers the same with eyried up or down; ``set`` and ``remove`` edit
it (that project's lines only) and ask a running eyried to reload, which rewrites the ``PROJECT.md`` of
the project's agents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from pydantic import BaseModel, Field
from rich.table import Table
from rich.text import Text

from supervisor.cli._app import OFFLINE_NOTE, Cli
from supervisor.cli._render import dumps, printable, reload_lines
from supervisor.control.schema import ReloadResult
from supervisor.errors import DaemonNotRunning

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


@click.group(invoke_without_command=True, short_help="List, set or remove the projects of fleet.yaml.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of projects (with their instances).")
@click.pass_context
def projects(ctx: click.Context, as_json: bool) -> None:
    """The projects of fleet.yaml: what the agents of each are told in their PROJECT.md.

    A project is listed under `projects:` in fleet.yaml (name, goal, description), or only named by
    instances (`project: ID`); the second kind still runs, its agents getting its id as its name and no
    goal, and is flagged UNDECLARED. Without a subcommand, lists them (as `projects list`).

    \b
    Examples:
      eyriectl projects
      eyriectl projects set apollo --name Apollo --goal "Land on the moon"
      eyriectl ps --project apollo
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_, as_json=as_json)


@projects.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of projects (with their instances).")
@click.pass_obj
def list_(cli: Cli, as_json: bool) -> None:
    """List the projects: ID NAME INSTANCES GOAL FLAGS. Reads fleet.yaml only, with eyried up or down.

    \b
    Examples:
      eyriectl projects list
      eyriectl projects --json | jq '.[] | select(.declared | not) | .id'
    """
    from supervisor.fleet import load_fleet  # the parser loads only for the commands that read the file

    rows = project_rows(load_fleet(cli.home.fleet_file))
    if as_json:
        cli.out.print(dumps(rows), markup=False)
    elif rows:
        cli.out.print(_table(rows))
    else:
        cli.note("no projects (list one with `eyriectl projects set ID --goal ...`)")


@projects.command(name="set")
@click.argument("project_id", metavar="ID")
@click.option("--name", help="The name its agents and `eyriectl projects` show (default: the id).")
@click.option("--goal", help="What the project is for, in one line.")
@click.option("--description", help="As much as its agents should know; several lines allowed.")
@click.option("--no-reload", is_flag=True, help="Do not ask a running eyried to reload afterwards.")
@click.pass_obj
def set_(
    cli: Cli,
    project_id: str,
    name: str | None,
    goal: str | None,
    description: str | None,
    no_reload: bool,
) -> None:
    """List project ID under `projects:` in fleet.yaml, or change its name, goal or description.

    Keys not given keep their value; "" clears one. Only that project's lines are rewritten: comments
    elsewhere in the file stay as they are. A running eyried is then asked to reload, which writes the new
    PROJECT.md into the workspace of each of the project's agents (restarting those whose framework reads
    its files only at start).

    \b
    Examples:
      eyriectl projects set apollo --name Apollo --goal "Land on the moon"
      eyriectl projects set apollo --description "$(cat apollo.md)"
    """
    from supervisor.fleet import set_project

    changes = {
        k: v for k, v in (("name", name), ("goal", goal), ("description", description)) if v is not None
    }
    set_project(cli.home.fleet_file, project_id, changes)
    cli.out.print(f"project {project_id} set in {cli.home.fleet_file}", markup=False)
    _apply(cli, no_reload)


@projects.command(name="remove")
@click.argument("project_id", metavar="ID")
@click.option("--no-reload", is_flag=True, help="Do not ask a running eyried to reload afterwards.")
@click.pass_obj
def remove(cli: Cli, project_id: str, no_reload: bool) -> None:
    """Take project ID out of `projects:` in fleet.yaml (its lines only).

    Instances that name it keep running: it becomes UNDECLARED, its agents' PROJECT.md naming it by its id,
    without a goal.

    \b
    Examples:
      eyriectl projects remove apollo
    """
    from supervisor.fleet import remove_project

    remove_project(cli.home.fleet_file, project_id)
    cli.out.print(f"project {project_id} removed from {cli.home.fleet_file}", markup=False)
    _apply(cli, no_reload)


def _apply(cli: Cli, no_reload: bool) -> None:
    """Ask a running eyried to reload the edited file, and say what it did."""
    if no_reload:
        cli.note("not reloaded: run `eyriectl reload` to apply it")
        return

    async def send() -> ReloadResult:
        async with cli.client() as client:
            return await client.reload()

    try:
        result = cli.run(send)
    except DaemonNotRunning:
        cli.note(OFFLINE_NOTE)
        return
    cli.out.print("\n".join(reload_lines(result)), markup=False)
