"""``eyriectl top``: every instance's status, CPU, memory, restarts and uptime, refreshed in place like
``pm2 monit``. On a pipe (or with ``--once``) it prints one snapshot and exits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from supervisor.cli._app import Cli
from supervisor.cli._render import dumps, duration, printable
from supervisor.models import format_size

if TYPE_CHECKING:
    from supervisor.control.schema import InstanceView

__all__ = ["top", "top_table"]

_DASH = "-"
_STATUS_STYLE = {"running": "green", "starting": "cyan", "stopped": "yellow", "error": "bold red"}


def top_table(views: list[InstanceView]) -> Table:
    """One snapshot: a row per instance, busiest first, and the fleet's totals in the caption."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "STATUS", "PID", "CPU%", "MEM", "PROCS", "RESTARTS", "UPTIME"):
        table.add_column(column, justify="right" if column in ("PID", "CPU%", "MEM", "PROCS") else "left")
    ordered = sorted(views, key=lambda v: (-(v.cpu_percent or 0.0), -(v.memory_bytes or 0), v.name))
    for v in ordered:
        table.add_row(
            Text(printable(v.name)),
            Text(printable(v.status or "missing"), style=_STATUS_STYLE.get(v.status, "")),
            str(v.pid) if v.pid is not None else _DASH,
            f"{v.cpu_percent:.1f}" if v.cpu_percent is not None else _DASH,
            format_size(v.memory_bytes) if v.memory_bytes is not None else _DASH,
            str(v.processes) if v.processes is not None else _DASH,
            f"{v.restart_count} ({v.total_restarts})",
            duration(v.uptime_seconds),
        )
    cpu = sum(v.cpu_percent or 0.0 for v in views)
    memory = sum(v.memory_bytes or 0 for v in views)
    running = sum(v.status == "running" for v in views)
    table.caption = f"{running}/{len(views)} running · CPU {cpu:.1f}% · memory {format_size(memory)}"
    return table


@click.command()
@click.option(
    "--interval",
    "-n",
    type=click.FloatRange(0.2, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one snapshot and exit (what a pipe always gets).")
@click.option("--json", "as_json", is_flag=True, help="One snapshot as a JSON list of instance objects.")
@click.pass_obj
def top(cli: Cli, interval: float, once: bool, as_json: bool) -> None:
    """Show every instance's status, CPU, memory, restarts and uptime, refreshed in place.

    CPU% is a percentage of one core over the last sample (each instance is sampled on its liveness
    interval), summed over the instance's process tree; MEM is the tree's resident memory; RESTARTS is the
    restart count since the last stable run and, in brackets, every restart. Ctrl-C quits. On a pipe, or
    with --once, one snapshot is printed and the command exits.

    \b
    Examples:
      eyriectl top
      eyriectl top --interval 5
      eyriectl top --once | grep error
    """

    async def fetch() -> list[InstanceView]:
        async with cli.client() as client:
            return await client.list_instances()

    if as_json:
        cli.out.print(dumps(cli.run(fetch)), markup=False)
        return
    if once or not cli.interactive:
        cli.out.print(top_table(cli.run(fetch)))
        return
    from rich.live import Live

    try:
        with Live(top_table(cli.run(fetch)), console=cli.out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(top_table(cli.run(fetch)), refresh=True)
    except KeyboardInterrupt:
        return
