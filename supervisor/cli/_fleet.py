"""Commands that change the declared fleet: ``init``, ``add``, ``remove``, ``enable``, ``disable``.

Each asks the daemon first (it edits ``fleet.yaml`` and applies the change at once); when no daemon runs,
the command edits the file itself and says the change applies at the next start. The file edits are the
fleet module's round-trip edits, so comments and layout survive.
"""

from __future__ import annotations

import contextlib
import json

import click
import psutil

from supervisor.cli._app import OFFLINE_NOTE, Cli, CommandFailed
from supervisor.cli._complete import complete_instance_names
from supervisor.cli._lifecycle import TimedOut, bounded, wait_options
from supervisor.cli._render import dumps, view_line
from supervisor.cli._start_failure import explain_failed_start
from supervisor.control.schema import AddRequest, InstanceView
from supervisor.errors import DaemonNotRunning, EyrieError, InvalidName, NotFound
from supervisor.fleet import (
    PROFILES,
    add_instance,
    load_fleet,
    remove_instance,
    set_autostart,
    write_initial_fleet,
)
from supervisor.frameworks.registry import BUILTIN_FRAMEWORKS
from supervisor.models import HierarchyRole, Instance, check_name
from supervisor.store import Store
from supervisor.trash import Trash

__all__ = ["add", "disable", "enable", "init", "remove"]

ROLES = ("commander", "captain", "talon")


def _slug(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_name(value)
    except InvalidName as exc:
        raise click.BadParameter(str(exc)) from None


def _daemon_running(cli: Cli) -> bool:
    async def ask() -> None:
        async with cli.client() as client:
            await client.status()

    try:
        cli.run(ask)
    except DaemonNotRunning:
        return False
    return True


@click.command()
@click.option(
    "--profile", type=click.Choice(PROFILES), default="general", show_default=True, help="Fleet shape."
)
@click.option(
    "--framework",
    type=click.Choice(BUILTIN_FRAMEWORKS),
    default="embedded",
    show_default=True,
    help="Framework every instance of the profile uses.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing fleet.yaml.")
@click.pass_obj
def init(cli: Cli, profile: str, framework: str, force: bool) -> None:
    """Write a commented fleet.yaml from a profile.

    Profiles: minimal (standalone agents), general, coding and research (a commander, captains and talons
    with projects and parents that pass the hierarchy rules). The instances use the embedded framework
    unless --framework picks another, so `eyried` runs a fresh init as is. An existing file is kept unless
    --force is given.

    \b
    Examples:
      eyriectl init
      eyriectl init --profile coding --framework zeroclaw
      eyriectl --home /tmp/demo init --profile minimal --force
    """
    path = cli.home.fleet_file
    cli.home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        write_initial_fleet(path, profile, framework, force=force)
    except FileExistsError:
        raise CommandFailed(f"{path} already exists; use --force to overwrite it") from None
    fleet = load_fleet(path)
    cli.out.print(
        f"wrote {path}: profile {profile}, {len(fleet.instances)} instances ({framework})", markup=False
    )
    if _daemon_running(cli):
        cli.note("eyried is running: apply the new file with `eyriectl reload`")
    else:
        cli.note(f"start the fleet with `eyried --home {cli.home.root}`")


@click.command()
@click.argument("name", callback=_slug)
@click.option("--framework", required=True, help=f"One of: {', '.join(BUILTIN_FRAMEWORKS)}.")
@click.option("--role", type=click.Choice(ROLES), help="Hierarchy role; standalone when absent.")
@click.option("--persona", default="", help="Persona id from the persona catalog.")
@click.option("--project", default="", help="Id of the project it belongs to (see `eyriectl projects`).")
@click.option("--parent", default="", help="Name of the parent instance (a talon's captain).")
@click.option("--model", default="", help="Model the agent uses.")
@click.option("--no-enable", is_flag=True, help="Do not start it after a reboot (autostart: false).")
@click.option("--no-start", is_flag=True, help="Provision it but do not start it now.")
@wait_options
@click.option("--json", "as_json", is_flag=True, help="Print the new instance as JSON.")
@click.pass_obj
def add(
    cli: Cli,
    name: str,
    framework: str,
    role: str | None,
    persona: str,
    project: str,
    parent: str,
    model: str,
    no_enable: bool,
    no_start: bool,
    no_block: bool,
    timeout: float | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Declare a new instance in fleet.yaml, provision it and start it, waiting until it runs.

    It is enabled (comes back after a reboot) unless --no-enable, and started now unless --no-start.
    When it does not start, the command says why, shows the end of its log and exits 1; the instance
    stays declared (fix it, then `eyriectl start NAME`, or `eyriectl remove NAME`). With eyried down only
    fleet.yaml changes; eyried provisions the instance, and starts it when it is enabled, at its next start.

    \b
    Examples:
      eyriectl add scout-sam --framework embedded
      eyriectl add coder-cat --framework zeroclaw --role talon --project apollo --parent lead-leo
      eyriectl add spare --framework embedded --no-enable --no-start
    """
    request = AddRequest(
        name=name,
        framework=framework,
        role=HierarchyRole(role or ""),
        persona=persona,
        project=project,
        parent=parent,
        model=model,
        enable=not no_enable,
        start=not no_start,
    )

    if no_block and (wait or timeout is not None):
        raise click.UsageError("--no-block does not wait: drop --wait/--timeout")

    async def online() -> InstanceView | TimedOut:
        async with cli.client() as client:
            view = await client.add(request)
            if no_start or no_block:
                return view
            return await bounded(client, name, lambda: client.start(name, wait=True), timeout)

    try:
        outcome = cli.run(online)
    except DaemonNotRunning:
        add_instance(cli.home.fleet_file, request.declaration())
        cli.out.print(f"declared {name} in {cli.home.fleet_file}", markup=False)
        cli.note(OFFLINE_NOTE)
        return
    view = outcome.view if isinstance(outcome, TimedOut) else outcome
    cli.out.print(dumps(view) if as_json else view_line(view), markup=False)
    if no_start or no_block or (view.status == "running" and not isinstance(outcome, TimedOut)):
        return
    late = f" within {outcome.seconds:g}s" if isinstance(outcome, TimedOut) else ""
    state = view.status or "not running"
    if view.status_detail:
        state += f" ({view.status_detail})"
    cli.err.print(f"{name} did not start{late}:", markup=False)
    explain_failed_start(cli, view)
    raise CommandFailed(
        f"{name} was added and stays declared in {cli.home.fleet_file}, but is {state}{late};"
        f" fix it and `eyriectl start {name}`, or `eyriectl remove {name}`"
    )


@click.command()
@click.argument("name", shell_complete=complete_instance_names)
@click.option("--purge", is_flag=True, help="Delete its directory instead of moving it to the trash.")
@click.option("--keep-files", is_flag=True, help="Move its directory to the trash (the default anyway).")
@click.option("--json", "as_json", is_flag=True, help="What was removed and where its files went, as JSON.")
@click.option("--wait", is_flag=True, hidden=True, help="Wait until it is removed (always so).")
@click.pass_obj
def remove(cli: Cli, name: str, purge: bool, keep_files: bool, as_json: bool, wait: bool) -> None:
    """Stop an instance, remove it from fleet.yaml and move its directory to the trash.

    It returns once the instance is stopped and its files moved. What was removed never comes back after a
    reboot. Its directory (workspace, memory, sessions, logs)
    moves to $EYRIE_HOME/removed/<name>-<id>-<UTC time>/, from where `eyriectl trash restore NAME` brings
    it back; --purge deletes it instead. With eyried down the file edit and the move happen here, unless
    the instance's process is still alive.

    \b
    Examples:
      eyriectl remove scout-sam
      eyriectl remove coder-cat --purge
    """
    if purge and keep_files:
        raise click.UsageError("--purge and --keep-files contradict each other")

    async def online() -> None:
        async with cli.client() as client:
            await client.remove(name, purge=purge)

    try:
        cli.run(online)
    except DaemonNotRunning:
        _remove_offline(cli, name, purge=purge, as_json=as_json)
        cli.note(OFFLINE_NOTE)
        return
    where = None if purge else _trashed(cli, name)
    if as_json:
        cli.out.print(json.dumps({"removed": name, "purged": purge, "trash": where}), markup=False)
        return
    cli.out.print(f"removed {name}", markup=False)
    _say_where(cli, name, purge=purge, where=where)


def _trashed(cli: Cli, name: str) -> str | None:
    """Where the newest trash entry of ``name`` is (the one the daemon just made)."""
    try:
        return str(Trash(cli.home).find(name).path)
    except NotFound:
        return None


def _say_where(cli: Cli, name: str, *, purge: bool, where: str | None) -> None:
    if purge:
        cli.note(f"{name}'s files were deleted")
    elif where is not None:
        cli.note(f"its files are in {where}; `eyriectl trash restore {name}` brings it back")


def _remove_offline(cli: Cli, name: str, *, purge: bool, as_json: bool) -> None:
    store = Store(cli.home)
    inst: Instance | None = None
    with contextlib.suppress(NotFound):
        inst = store.get_by_name(name)
    if inst is not None and (pid := _live_pid(inst)) is not None:
        raise CommandFailed(
            f"{name} still runs as pid {pid} although eyried is not running; start eyried and remove it"
            " again, or stop that process first"
        )
    fleet = load_fleet(cli.home.fleet_file) if cli.home.fleet_file.exists() else None
    declaration = None
    if fleet is not None and name in fleet.names():
        declaration = {"name": name, **fleet.decl(name).model_dump(mode="json", exclude_defaults=True)}
    if declaration is None and inst is None:
        raise NotFound(f"instance {name!r} is neither declared in {cli.home.fleet_file} nor provisioned")
    if declaration is not None:
        remove_instance(cli.home.fleet_file, name)
    where: str | None = None
    if inst is not None:
        from supervisor.provision import Provisioner  # heavy (templates, personas): only this path needs it

        entry = Provisioner(store, cli.home).deprovision(
            inst.id, purge=purge, name=name, declaration=declaration
        )
        where = str(entry.path) if entry is not None else None
    if as_json:
        out = {"removed": name, "purged": purge and inst is not None, "trash": where}
        cli.out.print(json.dumps(out), markup=False)
        return
    if declaration is not None:
        cli.out.print(f"removed {name} from {cli.home.fleet_file}", markup=False)
    if inst is not None:
        _say_where(cli, name, purge=purge, where=where)


def _live_pid(inst: Instance) -> int | None:
    """The instance's recorded pid if that process is alive and really belongs to the instance."""
    if inst.pid is None:
        return None
    try:
        proc = psutil.Process(inst.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return inst.pid if proc.environ().get("EYRIE_INSTANCE_ID") == inst.id else None
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return inst.pid  # cannot tell: assume it is ours rather than delete files under a live agent


def _autostart_command(enabled: bool) -> click.Command:
    verb = "enable" if enabled else "disable"

    @click.command(name=verb)
    @click.argument("names", nargs=-1, required=True, shell_complete=complete_instance_names)
    @click.pass_obj
    def command(cli: Cli, names: tuple[str, ...]) -> None:
        async def online() -> list[InstanceView | EyrieError]:
            results: list[InstanceView | EyrieError] = []
            async with cli.client() as client:
                for name in names:
                    try:
                        results.append(await (client.enable(name) if enabled else client.disable(name)))
                    except DaemonNotRunning:
                        raise
                    except EyrieError as exc:
                        results.append(exc)
            return results

        try:
            results = cli.run(online)
        except DaemonNotRunning:
            for name in names:
                set_autostart(cli.home.fleet_file, name, enabled)
                cli.out.print(f"{name}: autostart {'on' if enabled else 'off'}", markup=False)
            cli.note(OFFLINE_NOTE)
            return
        failed = 0
        for name, result in zip(names, results, strict=True):
            if isinstance(result, EyrieError):
                failed += 1
                cli.err.print(f"{name}: {result}", markup=False)
            else:
                cli.out.print(f"{name}: autostart {'on' if result.autostart else 'off'}", markup=False)
        if failed:
            raise CommandFailed(f"{failed} of {len(names)} could not be {verb}d")

    command.help = (
        f"{verb.capitalize()} instances: {'start' if enabled else 'do not start'} them after a reboot.\n\n"
        f"Sets autostart: {'true' if enabled else 'false'} in fleet.yaml; whether they run now does not"
        " change (use start/stop for that).\n\n"
        f"\b\nExamples:\n  eyriectl {verb} scout-sam\n  eyriectl {verb} coder-cat lead-leo"
    )
    return command


enable = _autostart_command(True)
disable = _autostart_command(False)
