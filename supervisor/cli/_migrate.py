"""``migrate``: bring provisioned instances up to this release's on-disk layout, here, without the daemon.

Migrations rewrite files the daemon reads and owns, so a real run refuses while eyried runs and holds the
daemon's lock throughout: an eyried started meanwhile refuses to start rather than read half-migrated
instances. ``--dry-run`` only reads, so it runs any time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
from collections.abc import Iterator

import click

from supervisor._safe_read import read_text
from supervisor.cli._app import Cli, CommandFailed
from supervisor.cli._render import dumps
from supervisor.errors import UnitValueError
from supervisor.models import MigrationResult
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.systemd.install import Step, legacy_unit, move_legacy_unit
from supervisor.systemd.names import unit_name
from supervisor.systemd.unit import UNIT_NAME

__all__ = ["migrate"]

_PID_FILE_LIMIT = 64


@contextlib.contextmanager
def _daemon_lock(home: Home) -> Iterator[None]:
    """Hold the daemon's lock, or fail naming the running daemon."""
    home.ensure_run_dir()
    fd = os.open(home.daemon_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _daemon_pid(home)
            raise CommandFailed(
                f"eyried is running for {home.root}{f' (pid {pid})' if pid else ''}; stop it before migrating"
                f" ({_stop_hint(home)}), or look first with `eyriectl migrate --dry-run`"
            ) from None
        yield
    finally:
        os.close(fd)


def _stop_hint(home: Home) -> str:
    """How this home's service is stopped: the unit it runs under now, an older release's or its own."""
    try:
        legacy = legacy_unit(home.root, os.environ)
        name = UNIT_NAME if legacy is not None else unit_name(home.root, os.environ)
    except UnitValueError:
        return "stop the eyried that serves it"
    return f"`systemctl --user stop {shlex.quote(name)}`"


def _daemon_pid(home: Home) -> int | None:
    try:
        return int(read_text(home.pid_file, limit=_PID_FILE_LIMIT).strip())
    except (OSError, ValueError):
        return None


def _line(result: MigrationResult, dry_run: bool) -> str:
    name = result.instance_name or result.instance_id
    if result.error:
        return f"{name}: FAILED: {result.error}"
    if not result.applied:
        return f"{name}: up to date"
    verb = "would apply" if dry_run else "applied"
    return f"{name}: {verb} " + "; ".join(result.applied)


@click.command(short_help="Migrate provisioned instances to this release's layout.")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="The results as a JSON list.")
@click.pass_obj
def migrate(cli: Cli, dry_run: bool, as_json: bool) -> None:
    """Migrate provisioned instances to this release's layout (idempotent).

    Runs here, not in the daemon: stop eyried first (a real run refuses while it runs). Exit 1 if any
    instance failed to migrate. A home other than ~/.eyrie that an older release installed as
    eyried.service gets its own unit, eyried@<escaped home>.service (enabled if the old one was).

    \b
    Examples:
      eyriectl migrate --dry-run
      systemctl --user stop eyried && eyriectl migrate && systemctl --user start eyried
    """
    from supervisor.migrate import migrate_all  # heavy (TOML round-trip): only this command needs it

    store = Store(cli.home)
    if dry_run:
        results = migrate_all(store, dry_run=True)
        unit_steps = move_legacy_unit(home=cli.home.root, dry_run=True)
    else:
        with _daemon_lock(cli.home):
            results = migrate_all(store, dry_run=False)
            unit_steps = move_legacy_unit(home=cli.home.root)
    _report_unit(cli, unit_steps)
    if as_json:
        cli.out.print(dumps(results), markup=False)
    elif results:
        for result in results:
            cli.out.print(_line(result, dry_run), markup=False)
    else:
        cli.note("no instances to migrate")
    failed = [r for r in results if r.error]
    if failed:
        raise CommandFailed(f"{len(failed)} of {len(results)} instances could not be migrated")
    if not all(step.ok for step in unit_steps):
        raise CommandFailed("the systemd unit could not be moved to this home's own name")


def _report_unit(cli: Cli, steps: list[Step]) -> None:
    """The unit's move, on stderr (stdout stays the instances' results); silent when there was none."""
    for step in steps:
        cli.note(f"{'unit' if step.ok else 'unit FAILED'}: {step.name}: {step.detail}")
