"""``install``, ``uninstall`` and ``doctor``: eyried as a systemd user service, from the command line.

The work is done by `supervisor.systemd`; these commands print each step or check on its own line, marked
``✓`` (done, or fine), ``!`` (a warning: it works, with a caveat) or ``✗`` (failed, with what to do about
it), and exit 1 when any failed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import click
from rich.text import Text

from supervisor.cli._app import Cli, CommandFailed
from supervisor.systemd.doctor import Check, run_checks
from supervisor.systemd.install import Step
from supervisor.systemd.install import install as install_unit
from supervisor.systemd.install import uninstall as uninstall_unit

__all__ = ["doctor", "install", "uninstall"]

OK, WARN, FAIL = "✓", "!", "✗"
_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}


def _line(mark: str, name: str, width: int, detail: str) -> Text:
    text = Text(mark, style=_STYLE[mark])
    text.append(f" {name.ljust(width)}  {detail}")
    return text


def _print_steps(cli: Cli, steps: Sequence[Step]) -> None:
    width = max((len(step.name) for step in steps), default=0)
    for step in steps:
        mark = FAIL if not step.ok else WARN if step.warning else OK
        cli.out.print(_line(mark, step.name, width, step.detail))


def _json(cli: Cli, items: Sequence[Step] | Sequence[Check]) -> None:
    cli.out.print(json.dumps([dataclasses.asdict(item) for item in items], indent=2), markup=False)


def _finish(cli: Cli, steps: Sequence[Step], what: str, as_json: bool) -> None:
    if as_json:
        _json(cli, steps)
    else:
        _print_steps(cli, steps)
    failed = [step.name for step in steps if not step.ok]
    if failed:
        raise CommandFailed(f"{what} failed at: {', '.join(failed)}")


@click.command()
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option("--no-linger", is_flag=True, help="Do not enable linger (the fleet then starts at login).")
@click.option("--no-start", is_flag=True, help="Enable the service without starting it now.")
@click.option("--json", "as_json", is_flag=True, help="The steps as a JSON list.")
@click.pass_obj
def install(cli: Cli, dry_run: bool, no_linger: bool, no_start: bool, as_json: bool) -> None:
    """Install eyried as a systemd user service for this home and start it.

    Writes this home's unit into the user unit directory ($XDG_CONFIG_HOME/systemd/user, default
    ~/.config/systemd/user): eyried.service for ~/.eyrie, eyried@<escaped home>.service for any other
    home, so homes never replace each other's. It reloads the user manager, enables the service (and
    starts it unless --no-start) and enables linger, so that the fleet comes back at boot without a
    login. A home an older release installed as eyried.service moves to its own unit. Each step is
    printed: ✓ done, ! done with a warning (linger that cannot be enabled), ✗ failed (exit 1). Running it
    again is safe: the unit is rewritten only when it changed, and a running service restarted only then.

    \b
    Examples:
      eyriectl install
      eyriectl install --dry-run
      eyriectl --home /srv/agents install --no-linger --no-start
    """
    steps = install_unit(home=cli.home.root, dry_run=dry_run, linger=not no_linger, start=not no_start)
    _finish(cli, steps, "install", as_json)


@click.command()
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="The steps as a JSON list.")
@click.pass_obj
def uninstall(cli: Cli, dry_run: bool, as_json: bool) -> None:
    """Stop and disable this home's eyried user service and remove exactly what install made.

    The service is stopped (which stops the fleet), disabled and its unit file removed; linger is disabled
    again only if install had enabled it. A unit file install did not write is left alone (✗, exit 1),
    and so is every other home's unit.
    The fleet file and the instances stay: `eyried` or `eyriectl install` brings them back.

    \b
    Examples:
      eyriectl uninstall
      eyriectl uninstall --dry-run
    """
    _finish(cli, uninstall_unit(home=cli.home.root, dry_run=dry_run), "uninstall", as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The checks as a JSON list.")
@click.pass_obj
def doctor(cli: Cli, as_json: bool) -> None:
    """Check that the fleet survives crashes and reboots, and say how to fix what does not.

    Checks: the systemd user manager answers, linger is enabled, the unit is installed, current and
    enabled, eyried runs for this home, every declared framework's program is found on the user manager's
    PATH, and the instance port range has room. Nothing is changed. Exit 1 if any check failed.

    \b
    Examples:
      eyriectl doctor
      eyriectl --home /srv/agents doctor --json
    """
    checks = run_checks(cli.home.root)
    if as_json:
        _json(cli, checks)
    else:
        width = max((len(check.name) for check in checks), default=0)
        for check in checks:
            mark = FAIL if not check.ok else WARN if check.warning else OK
            cli.out.print(_line(mark, check.name, width, check.detail))
            if (not check.ok or check.warning) and check.fix:
                cli.out.print(f"  {' ' * width}  fix: {check.fix}", markup=False)
    failed = [check for check in checks if not check.ok]
    if failed:
        raise CommandFailed(f"{len(failed)} of {len(checks)} checks failed")
