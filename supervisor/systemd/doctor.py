"""``eyriectl doctor``: is everything in place for the fleet to survive crashes and reboots?

Each `Check` says what was found and, when it failed, what to run to fix it. Checks never change anything.
Programs are looked up on the PATH the user manager gives its services (what eyried will see), not only on
the caller's PATH, since the two often differ.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

import psutil

from supervisor._safe_read import read_text
from supervisor.errors import PortClaimsUnusable, UnitValueError
from supervisor.paths import Home
from supervisor.port_claims import CLAIMS_DIR_VAR, Claim, ClaimRegistry
from supervisor.ports import PortRange
from supervisor.sandbox.confine import landlock_abi, missing_features
from supervisor.store import Store
from supervisor.systemd._agent_checks import layout_check, projects_check, secrets_checks
from supervisor.systemd._check import Check
from supervisor.systemd._commands import linger_enabled, systemctl, unit_dir, user_name
from supervisor.systemd._fleet import FleetFacts, Program, fleet_facts
from supervisor.systemd._open_files_check import open_files_check
from supervisor.systemd._package_check import package_reach_check
from supervisor.systemd.install import legacy_unit, render_for
from supervisor.systemd.names import unit_name
from supervisor.systemd.unit import UNIT_NAME, served_home

__all__ = ["MIN_FREE_PORTS", "Check", "check_instances", "check_sandbox", "run_checks"]

MIN_FREE_PORTS = 10
"""Fewer free ports than this in the instance range and adding instances is about to fail."""


def run_checks(
    home: Path, env: Mapping[str, str] | None = None, *, eyried_path: Path | None = None
) -> list[Check]:
    """Every check, in the order an operator would fix them. ``home`` must be absolute."""
    environ = os.environ if env is None else env
    the_home = Home(home)
    facts = fleet_facts(the_home)
    manager, manager_path = _manager(environ)
    checks = [manager, _linger(environ)]
    try:
        name = unit_name(home, environ)
    except UnitValueError as exc:
        checks.append(Check("unit", False, str(exc), "use a shorter home path"))
    else:
        checks += _unit(home, name, environ, eyried_path, reachable=manager.ok)
        checks.append(_daemon(the_home, name, environ, reachable=manager.ok))
    checks += _frameworks(the_home, facts, manager_path or environ.get("PATH", os.defpath), manager.ok)
    checks.append(_port_claims(the_home, ClaimRegistry()))
    checks.append(_ports(the_home, facts.ports, ClaimRegistry(), declared=facts.instances))
    checks.append(open_files_check(facts.instances, _daemon_pid(the_home)))
    checks.append(check_instances(the_home))
    checks.append(layout_check(the_home))
    checks += secrets_checks(the_home)
    if (projects := projects_check(the_home)) is not None:
        checks.append(projects)
    checks.append(check_sandbox(landlock_abi()))
    checks.append(package_reach_check(home))
    return checks


def check_sandbox(abi: int) -> Check:
    """Whether this kernel confines agents fully (Landlock ABI 6 or later: files, TCP bind, signals)."""
    missing = missing_features(abi)
    if not missing:
        return Check("sandbox", True, f"agents run confined (Landlock ABI {abi})")
    return Check(
        "sandbox",
        False,
        f"this kernel (Landlock ABI {abi}) lacks {'; '.join(missing)}",
        "run a kernel with Landlock ABI 6 or later (Linux 6.12+) and 'landlock' in its lsm= boot list",
    )


def _manager(env: Mapping[str, str]) -> tuple[Check, str | None]:
    state = systemctl(env, "is-system-running", timeout=15)
    status = state.stdout.strip()
    if status in ("", "offline", "unknown"):
        uid = os.getuid()
        return (
            Check(
                "systemd",
                False,
                f"no systemd user manager answers ({state.message})",
                f"log in as {user_name()} (or enable linger) so that user@{uid}.service runs, and make sure"
                f" XDG_RUNTIME_DIR=/run/user/{uid} is set",
            ),
            None,
        )
    path = None
    for line in systemctl(env, "show-environment", timeout=15).stdout.splitlines():
        if line.startswith("PATH="):
            path = line.removeprefix("PATH=")
    if status == "degraded":
        return (
            Check(
                "systemd", True, "user manager running, degraded: some units failed (not necessarily ours)"
            ),
            path,
        )
    return Check("systemd", True, f"user manager is {status}"), path


def _linger(env: Mapping[str, str]) -> Check:
    user = user_name()
    enabled, how = linger_enabled(env)
    if enabled:
        return Check("linger", True, f"enabled for {user} (per {how})")
    return Check(
        "linger",
        False,
        f"not enabled for {user} (per {how}): the user manager and the fleet start only when {user} logs in",
        f"sudo loginctl enable-linger {user}",
    )


def _moved_unit(home: Path, name: str, env: Mapping[str, str]) -> Check | None:
    """An older release's ``eyried.service`` that serves this home, or that another home still holds."""
    legacy = legacy_unit(home, env)
    if legacy is not None:
        return Check(
            "unit",
            False,
            f"{legacy} serves this home: an older release installed every home as {UNIT_NAME}; each home"
            f" now has its own unit, here {name}",
            "eyriectl migrate (or eyriectl install), from this home",
        )
    if name != UNIT_NAME:
        return None
    path = unit_dir(env) / name
    with contextlib.suppress(OSError):
        served = served_home(path.read_text())
        if served is not None and os.path.normpath(served) != os.path.normpath(home):
            return Check(
                "unit",
                False,
                f"{path} serves {served}, not this home (an older release's install)",
                f"eyriectl --home {shlex.quote(str(served))} migrate, then eyriectl install",
            )
    return None


def _unit(
    home: Path, name: str, env: Mapping[str, str], eyried_path: Path | None, *, reachable: bool
) -> list[Check]:
    moved = _moved_unit(home, name, env)
    if moved is not None:
        return [moved]
    path = unit_dir(env) / name
    try:
        current = path.read_text()
    except FileNotFoundError:
        return [Check("unit", False, f"{path} does not exist", "eyriectl install")]
    try:
        fresh = render_for(home, eyried_path=eyried_path, env=env)
    except (UnitValueError, FileNotFoundError) as exc:
        return [Check("unit", False, f"{path} exists but cannot be compared: {exc}", "eyriectl install")]
    checks = []
    if current != fresh:
        changed = [
            line[1:]
            for line in difflib.unified_diff(current.splitlines(), fresh.splitlines(), lineterm="", n=0)
            if line.startswith("+") and not line.startswith("+++")
        ]
        checks.append(
            Check(
                "unit",
                False,
                f"{path} differs from what install would write now ({'; '.join(changed) or 'whitespace'})",
                "eyriectl install",
            )
        )
    elif (
        reachable
        and systemctl(env, "show", "-p", "NeedDaemonReload", "--value", name).stdout.strip() == "yes"
    ):
        checks.append(
            Check(
                "unit",
                False,
                f"{path} changed on disk since the manager read it",
                "systemctl --user daemon-reload",
            )
        )
    else:
        checks.append(Check("unit", True, f"{path} is installed and current"))
    if reachable:
        enabled = systemctl(env, "is-enabled", name).stdout.strip()
        if enabled == "enabled":
            checks.append(Check("enabled", True, f"{name} starts with the user manager"))
        else:
            checks.append(
                Check(
                    "enabled",
                    False,
                    f"{name} is {enabled or 'unknown'}: it will not start after a reboot",
                    f"systemctl --user enable {shlex.quote(name)}",
                )
            )
    return checks


def _lock_held(home: Home) -> bool:
    """The daemon holds an exclusive flock on its lock file for its whole life."""
    try:
        fd = os.open(home.daemon_lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _daemon(home: Home, name: str, env: Mapping[str, str], *, reachable: bool) -> Check:
    pid = None
    with contextlib.suppress(OSError, ValueError):
        pid = int(read_text(home.pid_file, limit=64).strip())
    running = _lock_held(home)
    active = ""
    main_pid = 0
    if reachable:
        active = systemctl(env, "is-active", name).stdout.strip()
        main_pid = int(systemctl(env, "show", "-p", "MainPID", "--value", name).stdout.strip() or 0)
    if active == "active" and running:
        return Check("daemon", True, f"eyried is running under systemd (pid {main_pid}) for {home.root}")
    if active == "active":
        return Check(
            "daemon",
            False,
            f"{name} is active (pid {main_pid}) but no eyried holds {home.daemon_lock}:"
            " it serves another home",
            "eyriectl install --home <this home> (the unit's --home decides which fleet runs)",
        )
    if running:
        return Check(
            "daemon",
            True,
            f"eyried is running (pid {pid}) outside systemd: it will not come back by itself after a reboot",
        )
    state = f"{name} is {active}" if active else "no eyried is running"
    quoted = shlex.quote(name)
    return Check(
        "daemon",
        False,
        f"{state}; nobody supervises the fleet in {home.root}",
        f"systemctl --user start {quoted} (see: systemctl --user status {quoted};"
        f" journalctl --user -u {quoted})",
    )


def _frameworks(home: Home, facts: FleetFacts, path: str, under_systemd: bool) -> list[Check]:
    if facts.error:
        return [Check("fleet", False, facts.error, f"fix {home.fleet_file}, then: eyriectl reload")]
    if not facts.programs:
        if not home.fleet_file.exists():
            return [Check("fleet", False, f"{home.fleet_file} does not exist", "eyriectl init")]
        return [Check("fleet", True, f"{home.fleet_file} declares no instances")]
    where = "the user manager's PATH" if under_systemd else "PATH"
    return [_program(p, path, where) for p in facts.programs]


def _program(program: Program, path: str, where: str) -> Check:
    name = f"framework {program.framework}"
    users = f"{program.instances} instance{'s' if program.instances != 1 else ''}"
    if program.program == "{python}":
        return Check(name, True, f"runs under the daemon's own Python ({users})")
    if "{" in program.program:
        return Check(
            name, True, f"program {program.program!r} is a template; checked when an instance starts"
        )
    found = shutil.which(program.program, path=path) if "/" not in program.program else None
    if "/" in program.program and os.access(program.program, os.X_OK):
        found = program.program
    if found:
        return Check(name, True, f"{program.program} found at {found} ({users})")
    return Check(
        name,
        False,
        f"{program.program!r} not found on {where} ({users} will fail to start)",
        f"install {program.framework}, or set frameworks.{program.framework}.command in fleet.yaml"
        " to its absolute path",
    )


def check_instances(home: Home) -> Check:
    """Instance directories the daemon cannot use: unreadable ones, and names held by several."""
    store = Store(home)
    index = store.index()
    problems = store.problems()
    unreadable_names = {p.name for p in problems}
    found = [f"{p.path}: {p.reason}" for p in problems]
    found += [reason for name, reason in index.contested.items() if name not in unreadable_names]
    if not found:
        return Check("instances", True, f"{len(index.instances)} instance directories readable")
    return Check(
        "instances",
        False,
        "; ".join(found),
        f"repair each file named, or move its directory out of {store.root} (a name held by an unreadable or"
        " a second directory is never given out, and processes of an unreadable one are stopped)",
    )


def _port_claims(home: Home, registry: ClaimRegistry) -> Check:
    """The machine-wide claims directory: usable, and how many ports this home and others claim in it."""
    try:
        registry.ensure()
    except PortClaimsUnusable as exc:
        return Check(
            "port claims",
            False,
            str(exc),
            f"make {registry.root} a directory of mode 1777 (sudo chmod 1777 {registry.root}), or set"
            f" {CLAIMS_DIR_VAR} for every eyried on this machine to one shared directory",
        )
    claims = registry.claims()
    ours = sum(1 for claim in claims if _home_owns(home, claim))
    detail = f"{registry.root}: {ours} ports claimed by this home, {len(claims) - ours} by others"
    return Check("port claims", True, detail)


def _home_owns(home: Home, claim: Claim) -> bool:
    return claim.owner is not None and claim.owner.home == os.path.abspath(home.root)


def _daemon_pid(home: Home) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(read_text(home.pid_file, limit=64).strip()) if _lock_held(home) else None
    return None


def _ports(home: Home, span: PortRange, registry: ClaimRegistry, *, declared: int) -> Check:
    bound = {
        conn.laddr.port
        for conn in psutil.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in span
    }
    ours = {inst.port for inst in Store(home).list() if inst.port in span}
    with contextlib.suppress(PortClaimsUnusable, OSError):
        bound |= {c.port for c in registry.claims() if c.port in span and not _home_owns(home, c)}
    strangers = bound - ours
    free = len(span) - len(strangers | ours)
    detail = (
        f"{free} of {len(span)} ports free in {span}"
        f" ({len(ours)} assigned to instances, {len(strangers)} held or claimed by others)"
    )
    if declared > len(span):
        return Check(
            "ports",
            False,
            f"{home.fleet_file} declares {declared} instances but daemon.ports holds {len(span)}: {detail}",
            f"widen daemon.ports in fleet.yaml to at least {declared} ports",
        )
    if free >= MIN_FREE_PORTS:
        return Check("ports", True, detail)
    return Check(
        "ports",
        False,
        detail,
        "remove unused instances, stop what listens in that range, or widen daemon.ports in fleet.yaml",
    )
