"""``start``, ``stop`` and ``restart``: one request per instance, all at once, optionally waiting for the end.

With ``--wait`` each request returns when its instance reached its goal (running, or stopped) or gave up
(error); on a terminal a spinner names the instances still pending while results print as they arrive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anyio
import click
from rich.status import Status

from supervisor.cli._app import Cli, CommandFailed
from supervisor.cli._complete import complete_instance_names
from supervisor.cli._render import view_line
from supervisor.client import ControlClient
from supervisor.control.schema import InstanceView
from supervisor.errors import DaemonNotRunning, EyrieError

__all__ = ["restart", "start", "stop"]

_GOAL = {"start": "running", "restart": "running", "stop": "stopped"}
_UNMANAGED = frozenset({"MISSING", "ORPHAN"})
"""--all leaves these out: the daemon runs neither (one is not provisioned, the other not declared)."""
_PAST = {"start": "started", "restart": "restarted", "stop": "stopped"}

Outcome = InstanceView | EyrieError


async def _act(client: ControlClient, action: str, name: str, wait: bool) -> InstanceView:
    if action == "start":
        return await client.start(name, wait=wait)
    if action == "stop":
        return await client.stop(name, wait=wait)
    return await client.restart(name, wait=wait)


@contextlib.contextmanager
def _pending_display(cli: Cli, action: str, pending: list[str], enabled: bool) -> Iterator[Status | None]:
    if not enabled:
        yield None
        return
    status = Status(_pending_text(action, pending), console=cli.out)
    with status:
        yield status


def _pending_text(action: str, pending: list[str]) -> str:
    return f"waiting for {len(pending)} to be {_PAST[action]}: {', '.join(pending)}"


def _lifecycle_command(action: str, summary: str) -> click.Command:
    goal = _GOAL[action]

    @click.command(name=action)
    @click.argument("names", nargs=-1, shell_complete=complete_instance_names)
    @click.option("--all", "all_", is_flag=True, help="Every instance eyried manages (not MISSING/ORPHAN).")
    @click.option("--wait", is_flag=True, help=f"Block until each is {goal} (or failed).")
    @click.pass_obj
    def command(cli: Cli, names: tuple[str, ...], all_: bool, wait: bool) -> None:
        if all_ and names:
            raise click.UsageError("give instance names or --all, not both")
        if not all_ and not names:
            raise click.UsageError("name at least one instance, or use --all")
        live = wait and cli.interactive

        async def run() -> tuple[list[str], dict[str, Outcome]]:
            async with cli.client() as client:
                targets = list(names)
                if all_:
                    views = await client.list_instances()
                    targets = [v.name for v in views if not _UNMANAGED.intersection(v.flags)]
                outcomes: dict[str, Outcome] = {}
                pending = list(targets)
                with _pending_display(cli, action, pending, live) as display:

                    async def one(name: str) -> None:
                        try:
                            outcomes[name] = await _act(client, action, name, wait)
                        except EyrieError as exc:
                            outcomes[name] = exc
                        pending.remove(name)
                        if display is not None:
                            _report(cli, name, outcomes[name])
                            if pending:
                                display.update(_pending_text(action, pending))

                    async with anyio.create_task_group() as tg:
                        for name in targets:
                            tg.start_soon(one, name)
                return targets, outcomes

        targets, outcomes = cli.run(run)
        down = [o for o in outcomes.values() if isinstance(o, DaemonNotRunning)]
        if down:
            raise down[0]
        if not targets:
            cli.note("no instances")
            return
        if not live:
            for name in targets:
                _report(cli, name, outcomes[name])
        failed = [
            n
            for n in targets
            if isinstance(outcomes[n], EyrieError) or (wait and getattr(outcomes[n], "status", "") != goal)
        ]
        if failed:
            what = f"did not reach {goal}" if wait else f"could not be {_PAST[action]}"
            raise CommandFailed(f"{len(failed)} of {len(targets)} {what}: {', '.join(failed)}")

    command.help = (
        f"{summary}\n\nNames or --all. With --wait, block until each is {goal} (or failed) and exit 1 if any"
        f" is not.\n\n\b\nExamples:\n  eyriectl {action} scout-sam\n  eyriectl {action} scout-sam coder-cat"
        f" --wait\n  eyriectl {action} --all --wait"
    )
    return command


def _report(cli: Cli, name: str, outcome: Outcome) -> None:
    if isinstance(outcome, EyrieError):
        cli.err.print(f"{name}: {outcome}", markup=False)
    else:
        cli.out.print(view_line(outcome), markup=False)


start = _lifecycle_command("start", "Start instances now; they run until stopped or the next boot.")
stop = _lifecycle_command("stop", "Stop instances now; they stay stopped until started or the next boot.")
restart = _lifecycle_command("restart", "Stop instances and start them again.")
