"""``start``, ``stop`` and ``restart``: one request per instance, all at once, waiting for the result as
``systemctl`` does.

By default each request returns when its instance reached its goal (running, or stopped) or gave up (a start
that backs off or fails); eyried bounds that wait by the instance's own start and stop timeouts plus a margin,
and ``--timeout`` bounds it further here. Each command prints the state reached; a failed start also prints
the instance's last error and the end of its log. On a terminal a live line per instance shows where it
stands meanwhile; on a pipe nothing prints until the results. ``--no-block`` returns as soon as eyried took
the request.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import click
from rich.console import Group
from rich.live import Live
from rich.spinner import Spinner

from supervisor.cli._app import Cli, CommandFailed
from supervisor.cli._complete import complete_instance_names
from supervisor.cli._render import printable, view_line
from supervisor.cli._start_failure import explain_failed_start
from supervisor.client import ControlClient
from supervisor.control.schema import InstanceView
from supervisor.errors import DaemonNotRunning, EyrieError

__all__ = ["WAIT_OPTIONS", "TimedOut", "bounded", "restart", "start", "stop", "wait_options"]

_GOAL = {"start": "running", "restart": "running", "stop": "stopped"}
_UNMANAGED = frozenset({"MISSING", "ORPHAN"})
"""--all leaves these out: the daemon runs neither (one is not provisioned, the other not declared)."""
_PAST = {"start": "started", "restart": "restarted", "stop": "stopped"}
_DOING = {"start": "starting", "restart": "restarting", "stop": "stopping"}
_REFRESH = 0.5
_BATCH = 500
"""Names per stop request (eyried takes at most 1000; a request body stays small)."""


@dataclass(frozen=True, slots=True)
class TimedOut:
    """``--timeout`` passed before the instance reached its goal; ``view`` is where it stood then."""

    view: InstanceView
    seconds: float


Outcome = InstanceView | TimedOut | EyrieError
_F = TypeVar("_F", bound=Callable[..., Any])


def wait_options(f: _F) -> _F:
    """``--no-block``, ``--timeout`` and the hidden ``--wait`` (the default now, kept for scripts)."""
    for option in reversed(WAIT_OPTIONS):
        f = option(f)
    return f


WAIT_OPTIONS = (
    click.option("--no-block", is_flag=True, help="Return at once; do not wait for the result."),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Wait at most this long (default: the instance's start/stop timeout plus a margin).",
    ),
    click.option("--wait", is_flag=True, hidden=True, help="Wait for the result (the default)."),
)


async def _act(client: ControlClient, action: str, name: str, wait: bool) -> InstanceView:
    if action == "start":
        return await client.start(name, wait=wait)
    if action == "stop":
        return await client.stop(name, wait=wait)
    return await client.restart(name, wait=wait)


async def bounded(
    client: ControlClient,
    name: str,
    request: Callable[[], Awaitable[InstanceView]],
    seconds: float | None,
) -> InstanceView | TimedOut:
    """``request()``, or where ``name`` stands once ``seconds`` passed without an answer."""
    with anyio.move_on_after(seconds):
        return await request()
    assert seconds is not None
    return TimedOut(await client.get_instance(name), seconds)


class _Progress:
    """The live lines on a terminal: one per instance still pending, with where it stands now."""

    def __init__(self, cli: Cli, action: str, pending: list[str]) -> None:
        self._action = action
        self._pending = pending
        self._seen: dict[str, InstanceView] = {}
        self._live = Live(console=cli.out, transient=True, refresh_per_second=8)

    @contextlib.contextmanager
    def shown(self) -> Iterator[None]:
        self._live.update(self._render())
        with self._live:
            yield

    def print(self, text: str) -> None:
        self._live.console.print(text, markup=False)
        self._live.update(self._render())

    async def poll(self, client: ControlClient) -> None:
        while True:
            with contextlib.suppress(EyrieError):
                self._seen = {v.name: v for v in await client.list_instances()}
            self._live.update(self._render())
            await anyio.sleep(_REFRESH)

    def _render(self) -> Group:
        lines = []
        for name in self._pending:
            view = self._seen.get(name)
            where = "…" if view is None else view.status
            if view is not None and view.status_detail:
                where = f"{where} ({view.status_detail})"
            lines.append(Spinner("dots", text=printable(f"{name}: {_DOING[self._action]}, now {where}")))
        return Group(*lines)


def _lifecycle_command(action: str, summary: str) -> click.Command:
    goal = _GOAL[action]

    @click.command(name=action)
    @click.argument("names", nargs=-1, shell_complete=complete_instance_names)
    @click.option("--all", "all_", is_flag=True, help="Every instance eyried manages (not MISSING/ORPHAN).")
    @wait_options
    @click.option("--json", "as_json", is_flag=True, help="The state reached, per instance, as JSON.")
    @click.pass_obj
    def command(
        cli: Cli,
        names: tuple[str, ...],
        all_: bool,
        no_block: bool,
        timeout: float | None,
        wait: bool,
        as_json: bool,
    ) -> None:
        if all_ and names:
            raise click.UsageError("give instance names or --all, not both")
        if not all_ and not names:
            raise click.UsageError("name at least one instance, or use --all")
        if no_block and (wait or timeout is not None):
            raise click.UsageError("--no-block does not wait: drop --wait/--timeout")
        block = not no_block
        live = block and cli.interactive and not as_json

        async def run() -> tuple[list[str], dict[str, Outcome]]:
            async with cli.client() as client:
                targets = list(names)
                if all_:
                    views = await client.list_instances()
                    targets = [v.name for v in views if not _UNMANAGED.intersection(v.flags)]
                outcomes: dict[str, Outcome] = {}
                pending = list(targets)
                progress = _Progress(cli, action, pending) if live and targets else None

                async def one(name: str) -> None:
                    try:
                        outcomes[name] = await bounded(
                            client, name, lambda: _act(client, action, name, block), timeout
                        )
                    except EyrieError as exc:
                        outcomes[name] = exc
                    pending.remove(name)
                    if progress is not None:
                        progress.print(_result_line(name, outcomes[name]))

                async def together() -> None:
                    for name, outcome in (await _stopped_together(client, targets, block, timeout)).items():
                        outcomes[name] = outcome
                        pending.remove(name)
                        if progress is not None:
                            progress.print(_result_line(name, outcome))

                with progress.shown() if progress is not None else contextlib.nullcontext():
                    async with anyio.create_task_group() as tg:
                        if progress is not None:
                            tg.start_soon(progress.poll, client)
                        if action == "stop" and len(targets) > 1:
                            await together()
                        async with anyio.create_task_group() as acts:
                            for name in list(pending):
                                acts.start_soon(one, name)
                        tg.cancel_scope.cancel()
                return targets, outcomes

        targets, outcomes = cli.run(run)
        down = [o for o in outcomes.values() if isinstance(o, DaemonNotRunning)]
        if down:
            raise down[0]
        if not targets:
            cli.note("no instances")
            return
        if as_json:
            cli.out.print(json.dumps([_json(n, outcomes[n]) for n in targets], indent=2), markup=False)
        elif not live:
            for name in targets:
                _report(cli, name, outcomes[name], requested="" if block else action)
        failed = [n for n in targets if not _reached(outcomes[n], goal if block else None)]
        if not as_json and goal == "running":
            for name in failed:
                if (view := _view(outcomes[name])) is not None:
                    cli.err.print(f"{name} did not start:", markup=False)
                    explain_failed_start(cli, view)
        if failed:
            what = f"did not reach {goal}" if block else f"could not be {_PAST[action]}"
            described = ", ".join(_state(n, outcomes[n]) for n in failed)
            raise CommandFailed(f"{len(failed)} of {len(targets)} {what}: {described}")

    command.help = (
        f"{summary}\n\nNames or --all. Waits until each is {goal} (or failed), prints the state reached and"
        f" exits 1 if any is not; --no-block returns at once.\n\n\b\nExamples:\n  eyriectl {action} scout-sam"
        f"\n  eyriectl {action} scout-sam coder-cat --timeout 30\n  eyriectl {action} --all --no-block"
    )
    return command


async def _stopped_together(
    client: ControlClient, names: list[str], wait: bool, seconds: float | None
) -> dict[str, Outcome]:
    """Stop ``names`` through one request per `_BATCH` names, so that eyried begins every stop at once;
    nothing when eyried predates that request (the caller stops them one by one). Names not answered within
    ``seconds`` come back as where they stand then."""
    outcomes: dict[str, Outcome] = {}
    batches = [names[i : i + _BATCH] for i in range(0, len(names), _BATCH)]

    async def batch(part: list[str]) -> None:
        try:
            answers = await client.stop_many(part, wait=wait)
        except EyrieError as exc:
            answers = [exc] * len(part)
        if answers is not None:
            outcomes.update(zip(part, answers, strict=True))

    with anyio.move_on_after(seconds) as bound:
        async with anyio.create_task_group() as tg:
            for part in batches:
                tg.start_soon(batch, part)
    if bound.cancelled_caught:
        assert seconds is not None
        for name in names:
            if name not in outcomes:
                try:
                    outcomes[name] = TimedOut(await client.get_instance(name), seconds)
                except EyrieError as exc:
                    outcomes[name] = exc
    return outcomes


def _view(outcome: Outcome) -> InstanceView | None:
    if isinstance(outcome, TimedOut):
        return outcome.view
    return outcome if isinstance(outcome, InstanceView) else None


def _reached(outcome: Outcome, goal: str | None) -> bool:
    """Whether the command did what it was asked (``goal`` None: only that eyried took it)."""
    if isinstance(outcome, EyrieError | TimedOut):
        return False
    return goal is None or outcome.status == goal


def _state(name: str, outcome: Outcome) -> str:
    """``alpha (error)``, ``beta (starting after 5s)``: a failed instance and where it stands."""
    if isinstance(outcome, EyrieError):
        return name
    if isinstance(outcome, TimedOut):
        return f"{name} ({outcome.view.status or 'not provisioned'} after {outcome.seconds:g}s)"
    detail = outcome.phase if outcome.phase in ("backoff", "cooldown") else ""
    return f"{name} ({outcome.status}{', ' + detail if detail else ''})"


def _result_line(name: str, outcome: Outcome, requested: str = "") -> str:
    """Where ``name`` stands; with --no-block (``requested`` names the action), where it stood when eyried
    took the request: ``alpha: stop requested, now running …``, never as if that were the result."""
    if isinstance(outcome, EyrieError):
        return f"{name}: {outcome}"
    if isinstance(outcome, TimedOut):
        return f"{view_line(outcome.view)}\n  still not there after {outcome.seconds:g}s (--timeout)"
    line = view_line(outcome)
    return f"{name}: {requested} requested, now {line.removeprefix(f'{name}: ')}" if requested else line


def _report(cli: Cli, name: str, outcome: Outcome, *, requested: str = "") -> None:
    if isinstance(outcome, EyrieError):
        cli.err.print(_result_line(name, outcome), markup=False)
    else:
        cli.out.print(_result_line(name, outcome, requested), markup=False)


def _json(name: str, outcome: Outcome) -> dict[str, object]:
    if isinstance(outcome, EyrieError):
        return {"name": name, "error": str(outcome)}
    view = _view(outcome)
    assert view is not None
    return {**view.model_dump(mode="json"), "timed_out": isinstance(outcome, TimedOut)}


start = _lifecycle_command("start", "Start instances now; they run until stopped or the next boot.")
stop = _lifecycle_command("stop", "Stop instances now; they stay stopped until started or the next boot.")
restart = _lifecycle_command("restart", "Stop instances and start them again.")
