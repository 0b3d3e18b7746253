"""``eyriectl trash``: list, restore and empty ``$EYRIE_HOME/removed/``, where removed instances go.

These are file operations under the store lock, so they work with eyried down. A restore puts the directory
back and its declaration back into fleet.yaml (a round-trip edit: comments stay), then asks a running eyried
to reload so that it adopts the instance; with eyried down, it is adopted at the next start.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from supervisor.cli._app import Cli, CommandFailed
from supervisor.cli._render import duration, reload_lines
from supervisor.errors import Conflict, DaemonNotRunning, EyrieError
from supervisor.models import parse_duration, utcnow
from supervisor.trash import Trash, TrashEntry

if TYPE_CHECKING:
    from supervisor.control.schema import ReloadResult

__all__ = ["trash"]


def _older_than(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


@click.group(invoke_without_command=True, short_help="List, restore or empty removed instances.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of trash entries.")
@click.pass_context
def trash(ctx: click.Context, as_json: bool) -> None:
    """Removed instances: their directories wait in $EYRIE_HOME/removed/ until restored or emptied.

    `eyriectl remove` and a reload that no longer finds an instance in fleet.yaml move its directory
    (workspace, memory, sessions, logs, config) here. eyried deletes entries older than the fleet file's
    daemon.trash_retention (default 30d). Without a subcommand, lists the trash.

    \b
    Examples:
      eyriectl trash
      eyriectl trash restore scout-sam
      eyriectl trash empty --older-than 7d
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_, as_json=as_json)


@trash.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of trash entries.")
@click.pass_obj
def list_(cli: Cli, as_json: bool) -> None:
    """List the trash, oldest removal first: name, id, age, size, whether it can be re-declared.

    \b
    Examples:
      eyriectl trash list
      eyriectl trash list --json | jq -r '.[].name'
    """
    entries = Trash(cli.home).entries()
    if as_json:
        cli.out.print(json.dumps([e.to_json() for e in entries], indent=2), markup=False)
        return
    if not entries:
        cli.note(f"the trash is empty ({cli.home.root / 'removed'})")
        return
    now = utcnow()
    for e in entries:
        age = duration((now - e.removed_at).total_seconds())
        declared = "declaration kept" if e.declaration is not None else "not declared"
        line = f"{e.name}  {e.instance_id}  removed {age} ago  {_size(e.size_bytes())}  {declared}"
        cli.out.print(line, markup=False)


@trash.command()
@click.argument("name")
@click.option("--id", "instance_id", help="Restore this copy rather than the newest of NAME.")
@click.option("--no-reload", is_flag=True, help="Do not ask a running eyried to reload afterwards.")
@click.option("--json", "as_json", is_flag=True, help="What was restored, as a JSON object.")
@click.pass_obj
def restore(cli: Cli, name: str, instance_id: str | None, no_reload: bool, as_json: bool) -> None:
    """Put a removed instance back: its directory, and its declaration into fleet.yaml.

    The newest copy of NAME unless --id picks another. Refused while NAME is declared in fleet.yaml or
    provisioned. A running eyried is then asked to reload, which adopts the instance (and starts it when
    it is enabled); with eyried down that happens at its next start.

    \b
    Examples:
      eyriectl trash restore scout-sam
      eyriectl trash restore scout-sam --id 4f0c9a52-1d7e-4b7e-9a57-2b1c1d0e6f3a
    """
    bin_ = Trash(cli.home)
    entry = bin_.find(name, instance_id=instance_id)
    declared_now = _declared(cli)
    if name in declared_now:
        raise Conflict(
            f"{name!r} is declared in {cli.home.fleet_file}; remove or rename that entry before restoring"
        )
    path = bin_.restore(entry)
    if entry.declaration is not None:
        _declare(cli, bin_, entry)
    result = None if no_reload else _reload(cli)
    if as_json:
        out: dict[str, Any] = {
            "restored": entry.name,
            "id": entry.instance_id,
            "path": str(path),
            "declared": entry.declaration is not None,
            "reload": result.model_dump(mode="json") if result is not None else None,
        }
        cli.out.print(json.dumps(out, indent=2), markup=False)
    else:
        cli.out.print(f"restored {entry.name} ({entry.instance_id}) to {path}", markup=False)
        if entry.declaration is None:
            cli.note(f"{entry.name} was not declared when removed: it shows as ORPHAN until you declare it")
        if result is not None:
            cli.out.print("\n".join(reload_lines(result)), markup=False)
    if result is None and not no_reload:
        cli.note("eyried is not running; it adopts the instance at its next start")
    elif no_reload:
        cli.note("not reloaded: run `eyriectl reload` to let eyried adopt it")


def _declared(cli: Cli) -> set[str]:
    from supervisor.fleet import load_fleet  # the parser loads only where a declaration is touched

    if not cli.home.fleet_file.exists():
        return set()
    return set(load_fleet(cli.home.fleet_file).names())


def _declare(cli: Cli, bin_: Trash, entry: TrashEntry) -> None:
    """Write the entry's declaration back into fleet.yaml; on failure the directory returns to the trash."""
    from supervisor.fleet import InstanceDecl, add_instance

    assert entry.declaration is not None
    try:
        add_instance(cli.home.fleet_file, InstanceDecl.model_validate(entry.declaration))
    except (EyrieError, ValidationError) as exc:
        bin_.put_back(entry)
        reason = str(exc) if isinstance(exc, EyrieError) else f"its declaration is not valid now: {exc}"
        raise CommandFailed(f"cannot restore {entry.name}: {reason}; it stays in the trash") from None


def _reload(cli: Cli) -> ReloadResult | None:
    async def send() -> ReloadResult:
        async with cli.client() as client:
            return await client.reload()

    try:
        return cli.run(send)
    except DaemonNotRunning:
        return None


@trash.command()
@click.option(
    "--older-than",
    "older_than",
    callback=_older_than,
    metavar="DURATION",
    help="Only entries removed longer ago than this (e.g. 7d, 12h).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@click.option("--json", "as_json", is_flag=True, help="The deleted entries, as a JSON list.")
@click.pass_obj
def empty(cli: Cli, older_than: timedelta | None, yes: bool, as_json: bool) -> None:
    """Delete entries from the trash for good: all of them, or those older than --older-than.

    On a terminal it asks first unless --yes.

    \b
    Examples:
      eyriectl trash empty --older-than 7d
      eyriectl trash empty --yes
    """
    bin_ = Trash(cli.home)
    if cli.interactive and not yes and not as_json:
        cutoff = None if older_than is None else utcnow() - older_than
        doomed = [e for e in bin_.entries() if cutoff is None or e.removed_at <= cutoff]
        if not doomed:
            cli.note("nothing to delete")
            return
        names = ", ".join(e.name for e in doomed)
        click.confirm(f"delete {len(doomed)} removed instance(s) for good ({names})?", abort=True)
    deleted = bin_.empty(older_than=older_than)
    if as_json:
        cli.out.print(json.dumps([e.to_json() for e in deleted], indent=2), markup=False)
        return
    for e in deleted:
        cli.out.print(f"deleted {e.entry}", markup=False)
    if not deleted:
        cli.note("nothing to delete")
