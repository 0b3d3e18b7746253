"""``eyriectl install`` / ``uninstall``: make eyried a user service that comes back after every reboot.

Install renders the unit into the user unit dir (writing only when the text changed), reloads the manager,
enables (and starts) the service, and enables linger so the user manager starts at boot without a login.
Every action is one `Step` in the report; linger that cannot be enabled is a warning, never a failure.

Each home has its own unit (`supervisor.systemd.names`), so install and uninstall touch only their own
home's. An older release installed every home as ``eyried.service``: a home that is not the default one and
finds that unit serving it moves to its own name (`move_legacy_unit`, run by install and by ``migrate``);
the default home refuses to take ``eyried.service`` over while it still serves another home.

Uninstall reverses exactly that. What install did that is not visible afterwards is kept in
``$EYRIE_HOME/run/install.json``: the unit file it wrote, and whether linger was enabled by it (only then does
uninstall disable linger again). A unit file at the same path that does not start with `UNIT_MARKER` was not
written by install and is left alone.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from supervisor._fs import atomic_write
from supervisor.errors import UnitValueError
from supervisor.paths import Home
from supervisor.systemd._commands import linger_enabled, run, systemctl, unit_dir, user_name
from supervisor.systemd._fleet import fleet_facts
from supervisor.systemd.names import unit_name
from supervisor.systemd.unit import UNIT_MARKER, UNIT_NAME, render_unit, served_home

__all__ = [
    "STATE_FILE",
    "Step",
    "default_eyried_path",
    "install",
    "legacy_unit",
    "move_legacy_unit",
    "render_for",
    "uninstall",
]

STATE_FILE = "install.json"
"""Under ``$EYRIE_HOME/run/``: what `install` did, so that `uninstall` undoes exactly that."""

_ACTIVE = ("active", "activating", "reloading")


def _journal(name: str) -> str:
    return f" (see: journalctl --user -u {shlex.quote(name)})"


@dataclass(frozen=True)
class Step:
    """One action of install or uninstall: what it was, whether it worked, what happened."""

    name: str
    ok: bool
    detail: str
    warning: bool = False


def default_eyried_path(env: Mapping[str, str] | None = None) -> Path:
    """The ``eyried`` installed next to this interpreter, else the first one on PATH."""
    sibling = Path(sys.executable).parent / "eyried"
    if os.access(sibling, os.X_OK):
        return sibling.absolute()
    found = shutil.which("eyried", path=(env or os.environ).get("PATH"))
    if found is None:
        raise FileNotFoundError(f"eyried not found next to {sys.executable} nor on PATH; pass its path")
    return Path(found).absolute()


def render_for(
    home: Path,
    *,
    eyried_path: Path | None = None,
    stop_timeout: float | None = None,
    watchdog_sec: float = 30,
    env: Mapping[str, str] | None = None,
) -> str:
    """The unit text `install` writes for ``home`` (stop timeout from its fleet file unless given)."""
    environ = os.environ if env is None else env
    if stop_timeout is None:
        stop_timeout = fleet_facts(Home(home)).stop_timeout
    return render_unit(
        eyried=eyried_path or default_eyried_path(environ),
        home=home,
        stop_timeout=stop_timeout,
        watchdog_sec=watchdog_sec,
    )


def _state_path(home: Path) -> Path:
    return Home(home).run_dir / STATE_FILE


def _read_state(home: Path) -> dict[str, object]:
    try:
        data = json.loads(_state_path(home).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def legacy_unit(home: Path, env: Mapping[str, str]) -> Path | None:
    """``eyried.service`` as an older release installed it for ``home``, when that is not its unit now."""
    if unit_name(home, env) == UNIT_NAME:
        return None
    path = unit_dir(env) / UNIT_NAME
    try:
        served = served_home(path.read_text())
    except OSError:
        return None
    return path if served is not None and os.path.normpath(served) == os.path.normpath(home) else None


def _other_home_on_default_unit(home: Path, env: Mapping[str, str]) -> Path | None:
    """The home ``eyried.service`` still serves when ``home`` is the default one that should own it."""
    if unit_name(home, env) != UNIT_NAME:
        return None
    try:
        served = served_home((unit_dir(env) / UNIT_NAME).read_text())
    except OSError:
        return None
    if served is None or os.path.normpath(served) == os.path.normpath(home):
        return None
    return served


def install(
    *,
    home: Path,
    eyried_path: Path | None = None,
    dry_run: bool = False,
    linger: bool = True,
    start: bool = True,
    stop_timeout: float | None = None,
    watchdog_sec: float = 30,
    env: Mapping[str, str] | None = None,
) -> list[Step]:
    """Install (or refresh) the user service; stops at the first failed step. ``home`` must be absolute.

    ``stop_timeout`` (seconds) defaults to the longest instance stop timeout in ``home``'s fleet file.
    """
    environ = os.environ if env is None else env
    try:
        text = render_for(
            home, eyried_path=eyried_path, stop_timeout=stop_timeout, watchdog_sec=watchdog_sec, env=environ
        )
        name = unit_name(home, environ)
    except (UnitValueError, FileNotFoundError) as exc:
        return [Step("unit", False, str(exc))]
    path = unit_dir(environ) / name
    other = _other_home_on_default_unit(home, environ)
    if other is not None:
        return [
            Step(
                "unit",
                False,
                f"{path} still serves {other} (installed by an older release, when every home shared it);"
                f" give that home its own unit first: eyriectl --home {shlex.quote(str(other))} migrate",
            )
        ]
    legacy = legacy_unit(home, environ)
    try:
        old: str | None = path.read_text()
    except FileNotFoundError:
        old = None
    changed = old != text
    if dry_run:
        planned = [Step("legacy", True, f"would stop, disable and remove {legacy}")] if legacy else []
        return planned + _planned_install(path, old, changed, start=start, linger=linger)

    steps: list[Step] = []
    if legacy is not None:
        retired, _was_enabled = _retire(environ, legacy)
        steps.append(retired)
        if not retired.ok:
            return steps
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text, mode=0o644)
    steps.append(
        Step("unit", True, f"{'wrote' if old is None else 'updated' if changed else 'unchanged:'} {path}")
    )
    reloaded = _reload(environ, name, changed or legacy is not None)
    for step in (reloaded, *_enable(environ, name, changed=changed, start=start)):
        steps.append(step)
        if not step.ok:
            return steps

    by_install = _read_state(home).get("linger_enabled_by_install") is True
    if linger:
        step, by_install = _enable_linger(environ, by_install)
        steps.append(step)
    else:
        steps.append(Step("linger", True, "skipped (--no-linger)"))
    Home(home).ensure_run_dir()
    record = {"unit": str(path), "linger_enabled_by_install": by_install}
    atomic_write(_state_path(home), json.dumps(record, indent=2) + "\n")
    return steps


def _retire(env: Mapping[str, str], legacy: Path) -> tuple[Step, bool]:
    """Stop, disable and remove an older release's ``eyried.service``; says whether it was enabled."""
    was_enabled = systemctl(env, "is-enabled", UNIT_NAME).stdout.strip() == "enabled"
    if systemctl(env, "is-active", UNIT_NAME).stdout.strip() in _ACTIVE:
        stopped = systemctl(env, "stop", UNIT_NAME)
        if not stopped.ok:
            return Step("legacy", False, f"systemctl --user stop {UNIT_NAME}: {stopped.message}"), was_enabled
    if was_enabled:
        disabled = systemctl(env, "disable", UNIT_NAME)
        if not disabled.ok:
            message = f"systemctl --user disable {UNIT_NAME}: {disabled.message}"
            return Step("legacy", False, message), was_enabled
    legacy.unlink(missing_ok=True)
    detail = f"removed {legacy}, which an older release installed for this home"
    return Step("legacy", True, detail), was_enabled


def move_legacy_unit(
    *,
    home: Path,
    eyried_path: Path | None = None,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[Step]:
    """Give ``home`` its own unit in place of an older release's ``eyried.service`` (``migrate``'s step).

    The new unit is enabled when the old one was, and not started: ``migrate`` runs while eyried is stopped.
    No steps: there was nothing to move.
    """
    environ = os.environ if env is None else env
    try:
        name = unit_name(home, environ)
        legacy = legacy_unit(home, environ)
        if legacy is None:
            return []
        text = render_for(home, eyried_path=eyried_path, env=environ)
    except (UnitValueError, FileNotFoundError) as exc:
        return [Step("unit", False, str(exc))]
    path = unit_dir(environ) / name
    if dry_run:
        return [Step("unit", True, f"would move {legacy} to {path}")]
    retired, was_enabled = _retire(environ, legacy)
    if not retired.ok:
        return [retired]
    atomic_write(path, text, mode=0o644)
    steps = [retired, Step("unit", True, f"wrote {path}")]
    reload = systemctl(environ, "daemon-reload")
    steps.append(Step("daemon-reload", reload.ok, "done" if reload.ok else _manager_problem(reload.message)))
    if reload.ok and was_enabled:
        enabled = systemctl(environ, "enable", name)
        detail = "enabled, as the old unit was" if enabled.ok else enabled.message
        steps.append(Step("enable", enabled.ok, detail))
    if Home(home).run_dir.is_dir():
        state = _read_state(home)
        record = {**state, "unit": str(path)}
        atomic_write(_state_path(home), json.dumps(record, indent=2) + "\n")
    steps.append(Step("start", True, f"start it with: systemctl --user start {shlex.quote(name)}"))
    return steps


def _planned_install(path: Path, old: str | None, changed: bool, *, start: bool, linger: bool) -> list[Step]:
    verb = "write" if old is None else "update"
    steps = [Step("unit", True, f"would {verb} {path}" if changed else f"unchanged: {path}")]
    if changed:
        steps.append(Step("daemon-reload", True, "would run systemctl --user daemon-reload"))
    now = " --now" if start else ""
    steps.append(Step("enable", True, f"would run systemctl --user enable{now} {shlex.quote(path.name)}"))
    if linger:
        steps.append(Step("linger", True, f"would run loginctl enable-linger {user_name()}"))
    return steps


def _reload(env: Mapping[str, str], name: str, changed: bool) -> Step:
    """``daemon-reload`` when the unit changed or the manager holds an older version of it."""
    stale = systemctl(env, "show", "-p", "NeedDaemonReload", "--value", name)
    if not stale.ok:
        return Step("daemon-reload", False, _manager_problem(stale.message))
    if not changed and stale.stdout.strip() != "yes":
        return Step("daemon-reload", True, "not needed")
    reload = systemctl(env, "daemon-reload")
    return Step("daemon-reload", reload.ok, "done" if reload.ok else _manager_problem(reload.message))


def _enable(env: Mapping[str, str], name: str, *, changed: bool, start: bool) -> list[Step]:
    """``enable`` (``--now`` when starting); a running service whose unit changed is restarted instead."""
    was_enabled = systemctl(env, "is-enabled", name).stdout.strip() == "enabled"
    was_active = systemctl(env, "is-active", name).stdout.strip() in _ACTIVE
    restart = start and changed and was_active
    args = ["enable", "--now", name] if start and not restart else ["enable", name]
    enabled = systemctl(env, *args)
    if not enabled.ok:
        command = shlex.join(["systemctl", "--user", *args])
        return [Step("enable", False, f"{command}: {enabled.message}{_journal(name)}")]
    detail = "already enabled" if was_enabled else "enabled: starts with the user manager"
    if start and not restart:
        detail += "; already running" if was_active else "; running"
    steps = [Step("enable", True, detail)]
    if restart:
        restarted = systemctl(env, "restart", name)
        detail = "restarted with the new unit" if restarted.ok else f"{restarted.message}{_journal(name)}"
        steps.append(Step("restart", restarted.ok, detail))
    return steps


def _manager_problem(message: str) -> str:
    return (
        f"{message}; is a systemd user manager running for this user? "
        "(XDG_RUNTIME_DIR must point at its runtime dir, e.g. /run/user/$UID)"
    )


def _enable_linger(env: Mapping[str, str], by_install: bool) -> tuple[Step, bool]:
    user = user_name()
    already, _how = linger_enabled(env)
    if already:
        return Step("linger", True, f"already enabled for {user}"), by_install
    done = run(["loginctl", "enable-linger", user], env, timeout=30)
    if done.ok:
        return Step("linger", True, f"enabled for {user}: the fleet starts at boot, without a login"), True
    return (
        Step(
            "linger",
            True,
            f"could not enable linger for {user} ({done.message}): the fleet will start when {user} logs in,"
            f" not at boot. Fix: sudo loginctl enable-linger {user}",
            warning=True,
        ),
        False,
    )


def _own_unit(home: Path, env: Mapping[str, str]) -> tuple[str, Path]:
    """The unit uninstall works on: this home's, or the older release's ``eyried.service`` serving it."""
    name = unit_name(home, env)
    path = unit_dir(env) / name
    legacy = legacy_unit(home, env)
    if legacy is not None and not path.exists():
        return UNIT_NAME, legacy
    return name, path


def uninstall(*, home: Path, dry_run: bool = False, env: Mapping[str, str] | None = None) -> list[Step]:
    """Stop and disable this home's service, remove the unit install wrote, reload; undo linger if install
    set it. Another home's unit is never touched.

    Keeps going after a failed step, so that as much as possible is undone; each step says what happened.
    """
    environ = os.environ if env is None else env
    state = _read_state(home)
    try:
        name, path = _own_unit(home, environ)
    except UnitValueError as exc:
        return [Step("unit", False, str(exc))]
    other = _other_home_on_default_unit(home, environ)
    if other is not None:
        return [Step("unit", False, f"{path} serves {other}, not this home; left alone")]
    by_install = state.get("linger_enabled_by_install") is True
    ours = path.exists() and path.read_text().startswith(UNIT_MARKER)
    quoted = shlex.quote(name)
    if dry_run:
        planned = [
            Step("stop", True, f"would run systemctl --user stop {quoted}"),
            Step("disable", True, f"would run systemctl --user disable {quoted}"),
            Step("unit", True, f"would remove {path}" if ours else f"{path}: nothing of ours to remove"),
            Step("daemon-reload", True, "would run systemctl --user daemon-reload"),
        ]
        if by_install:
            planned.append(Step("linger", True, f"would run loginctl disable-linger {user_name()}"))
        return planned

    steps: list[Step] = []
    if systemctl(environ, "is-active", name).stdout.strip() in _ACTIVE:
        stopped = systemctl(environ, "stop", name)
        steps.append(Step("stop", stopped.ok, "stopped" if stopped.ok else stopped.message))
    else:
        steps.append(Step("stop", True, "not running"))
    if systemctl(environ, "is-enabled", name).stdout.strip() == "enabled":
        disabled = systemctl(environ, "disable", name)
        steps.append(Step("disable", disabled.ok, "disabled" if disabled.ok else disabled.message))
    else:
        steps.append(Step("disable", True, "not enabled"))
    if ours:
        path.unlink()
        steps.append(Step("unit", True, f"removed {path}"))
    elif path.exists():
        steps.append(
            Step("unit", False, f"{path} was not written by eyriectl install (no marker line); left in place")
        )
    else:
        steps.append(Step("unit", True, f"{path} is already gone"))

    if any(step.ok and step.detail in ("stopped", "disabled") for step in steps) or ours:
        reload = systemctl(environ, "daemon-reload")
        if reload.ok:
            systemctl(environ, "reset-failed", name)  # forget a past failure of the removed unit
        steps.append(
            Step("daemon-reload", reload.ok, "done" if reload.ok else _manager_problem(reload.message))
        )
    else:
        steps.append(Step("daemon-reload", True, "not needed"))

    if by_install:
        user = user_name()
        done = run(["loginctl", "disable-linger", user], environ, timeout=30)
        steps.append(
            Step(
                "linger",
                True,
                f"disabled for {user} (install had enabled it)"
                if done.ok
                else f"could not disable linger ({done.message}); run: sudo loginctl disable-linger {user}",
                warning=not done.ok,
            )
        )
    else:
        steps.append(Step("linger", True, "left as it was (install did not enable it)"))
    _state_path(home).unlink(missing_ok=True)
    return steps
