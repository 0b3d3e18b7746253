"""Commands that look at the fleet and the daemon: ``ps``/``list``, ``status``, ``events``, ``reload``.

What ``ps``/``list`` and ``status`` do is in `supervisor.cli._look`, which runs without click as well.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from supervisor.cli._app import Cli, CommandFailed, DaemonDown
from supervisor.cli._complete import complete_instance_names
from supervisor.cli._look import show_instances, show_status
from supervisor.errors import DaemonNotRunning, EyrieError

if TYPE_CHECKING:
    from supervisor.control.schema import ReloadResult
    from supervisor.paths import Home

__all__ = ["events", "list_", "offline_plan", "ps", "reload", "status"]


def offline_plan(home: Home) -> ReloadResult:
    """What eyried would do at its next start, from the fleet file, the fleet last applied and the instances
    on disk (`supervisor.daemon._plan.plan_at_start`)."""
    from supervisor.control.schema import ReloadResult
    from supervisor.daemon._last_applied import load_applied
    from supervisor.daemon._plan import plan_at_start, secret_problems
    from supervisor.fleet import FleetFile, load_fleet
    from supervisor.store import Store

    fleet = FleetFile(version=1)
    if home.fleet_file.exists():
        try:
            fleet = load_fleet(home.fleet_file)
        except EyrieError as exc:
            return ReloadResult(ok=False, error=str(exc), dry_run=True)
    try:
        applied = load_applied(home.run_dir)
    except EyrieError:  # unreadable: eyried would not remove by it either
        applied = None
    result = plan_at_start(fleet, applied, {inst.name for inst in Store(home).list()})
    result.problems = secret_problems(fleet, home)
    return result


_PS_SHORT = "List instances: status, health, pid, port, uptime, restarts, CPU, memory, flags."
_PS_HELP = """List instances: NAME FRAMEWORK ROLE STATUS HEALTH PID PORT UPTIME RESTARTS CPU MEM SANDBOX
FLAGS.

CPU is the percent of one core the instance's whole process tree used over the last sample; MEM its
resident memory summed over the tree (312M, 1.4G). A dash where eyried has no sample (yet). An instance
in error or in backoff is followed by a line giving its last error.

SANDBOX says how each process runs: "landlock v7" (confined, Landlock ABI 7), "unavailable" (the kernel
has no Landlock: no_new_privs and the capability drop only), "off" (sandbox: off in fleet.yaml).

\b
Flags:
  DRIFT     the running process was started from a config that differs from fleet.yaml now
  MISSING   declared in fleet.yaml, not provisioned
  ORPHAN    provisioned or running, not declared in fleet.yaml
  DISABLED  running now, will not come back after a reboot

--project ID shows only the instances of that project (its id, as in fleet.yaml; `eyriectl projects`
lists them). With eyried down it shows the state recorded on disk and exits 3.

\b
Examples:
  eyriectl ps
  eyriectl ps --project apollo
  eyriectl ps --json | jq '.[] | select(.status != "running") | .name'
"""

_PROJECT_OPTION = click.option(
    "--project", metavar="ID", help="Only the instances of this project (its id, as in fleet.yaml)."
)


@click.command(help=_PS_HELP, short_help=_PS_SHORT)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of instance objects (with flags).")
@_PROJECT_OPTION
@click.pass_obj
def ps(cli: Cli, as_json: bool, project: str | None) -> None:
    show_instances(cli, as_json, project)


@click.command(name="list", help=_PS_HELP, short_help=_PS_SHORT)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of instance objects (with flags).")
@_PROJECT_OPTION
@click.pass_obj
def list_(cli: Cli, as_json: bool, project: str | None) -> None:
    show_instances(cli, as_json, project)


@click.command(short_help="Show the daemon (exit 4 when degraded), or one instance: status NAME.")
@click.argument("name", required=False, shell_complete=complete_instance_names)
@click.option("--json", "as_json", is_flag=True, help="The status as a JSON object.")
@click.pass_obj
def status(cli: Cli, name: str | None, as_json: bool) -> None:
    """Show the daemon: pid, version, uptime, home, fleet file, instance counts, last reload, problems;
    with NAME, that instance in full.

    Exits 0 when every instance meant to run is running and the last reload applied; otherwise it still
    prints the status, says what is degraded, and exits 4. Exit 3: eyried is not running.

    --json adds "degraded": the same reasons, one string each (empty when all is well).

    \b
    Examples:
      eyriectl status
      eyriectl status scout-sam
      eyriectl status --json | jq .degraded
      eyriectl status >/dev/null || echo "fleet degraded (exit $?)"
    """
    if name is not None:
        from supervisor.cli._instance_status import show_instance_status

        show_instance_status(cli, name, as_json)
        return
    show_status(cli, as_json)


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would change; apply nothing.")
@click.option("--json", "as_json", is_flag=True, help="The result as a JSON object.")
@click.pass_obj
def reload(cli: Cli, dry_run: bool, as_json: bool) -> None:
    """Re-read fleet.yaml and apply the difference (like SIGHUP).

    Added instances are provisioned, removed ones stopped and their directories moved to the trash
    (`eyriectl trash`), changed ones restarted, policy-only changes applied live. A changed project (name,
    goal, description) or parent rewrites the agents' PROJECT.md, restarting only those whose framework
    reads its files at start. An invalid file changes nothing: the error is printed and the exit code is 1;
    a project that instances name and `projects:` does not list is a warning.

    --dry-run prints the plan (added / removed / restarted / updated live) and applies nothing. With eyried
    down it compares fleet.yaml with the instances on disk instead (exit code 3): what is declared and not
    provisioned is added at the next start; what changed since eyried last applied the file cannot be told.

    \b
    Examples:
      eyriectl reload
      eyriectl reload --dry-run
      eyriectl reload --json
    """

    from supervisor.cli._render import dumps, reload_lines

    async def send() -> ReloadResult:
        async with cli.client() as client:
            return await (client.plan_reload() if dry_run else client.reload())

    try:
        result = cli.run(send)
    except DaemonNotRunning:
        if not dry_run:
            raise
        _offline_plan(cli, as_json)
        return
    if as_json:
        cli.out.print(dumps(result), markup=False)
    elif result.ok:
        cli.out.print("\n".join(reload_lines(result)), markup=False)
    if not result.ok:
        raise CommandFailed("" if as_json else "\n".join(reload_lines(result)))


def _offline_plan(cli: Cli, as_json: bool) -> None:
    """The plan from what is on disk, when no daemon holds the fleet in force; exits 3."""
    from supervisor.cli._render import dumps, reload_lines

    plan = offline_plan(cli.home)
    if as_json:
        cli.out.print(dumps(plan), markup=False)
    elif plan.ok:
        cli.out.print("\n".join(reload_lines(plan)), markup=False)
    if not plan.ok:
        raise CommandFailed("" if as_json else reload_lines(plan)[0])
    from supervisor.daemon.absent import daemon_not_running

    raise DaemonDown(
        f"{daemon_not_running(cli.home)}\n(planned against the instances on disk: changes made to an"
        " instance's entry since eyried last applied the file are not shown)"
    )


@click.command(short_help="Show recent lifecycle events; -f follows new ones.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until interrupted.")
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(0, 1000),
    default=20,
    show_default=True,
    help="Recent events.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event and line.")
@click.pass_obj
def events(cli: Cli, follow: bool, count: int, as_json: bool) -> None:
    """Show recent lifecycle events; with -f, follow new ones as they happen.

    \b
    Examples:
      eyriectl events
      eyriectl events -f
      eyriectl events -f -n 0 --json | jq -c 'select(.to_status == "error")'
    """

    from supervisor.cli._render import event_line

    def show(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def recent() -> None:
        async with cli.client() as client:
            for event in await client.recent_events(count):
                show(event.model_dump_json() if as_json else event_line(event))

    async def follow_stream() -> None:
        async with cli.client() as client, client.events(replay=count) as stream:
            async for event in stream:
                show(event.model_dump_json() if as_json else event_line(event))
        cli.note("eyried closed the event stream")

    try:
        cli.run(follow_stream if follow else recent)
    except KeyboardInterrupt:
        return
