"""``doctor``'s checks of what agents are given: the instance layout they are confined to, their secrets
(provider secrets present, none written in plain text into ``env:``), and the projects they are told about."""

from __future__ import annotations

import re

from supervisor.errors import EyrieError
from supervisor.models import SCHEMA_VERSION
from supervisor.paths import STATE_DIR, TMP_DIR, Home
from supervisor.secret_files import SecretFiles
from supervisor.store import Store
from supervisor.systemd._check import Check

__all__ = ["PLAINTEXT_KEY", "layout_check", "projects_check", "secrets_checks"]

PLAINTEXT_KEY = re.compile(r"(_API_KEY|_TOKEN)$|SECRET|PASSWORD", re.IGNORECASE)
"""Names of environment variables whose values are keys: they belong in a secret file, not in ``env:``."""


def layout_check(home: Home) -> Check:
    """Instances an older release (or eyrie) made, not yet moved to this release's layout."""
    store = Store(home)
    behind = sorted(
        inst.name
        for inst in store.list()
        if inst.schema_version < SCHEMA_VERSION
        or not all((store.dir(inst.id) / sub).is_dir() for sub in (STATE_DIR, TMP_DIR))
    )
    if not behind:
        return Check("instance layout", True, "every instance has this release's layout")
    return Check(
        "instance layout",
        False,
        f"{len(behind)} instance{'s' if len(behind) != 1 else ''} not migrated to this release's layout"
        f" ({STATE_DIR}/ and {TMP_DIR}/; Hermes and ZeroClaw keep their home in {STATE_DIR}/):"
        f" {', '.join(behind)}",
        "eyriectl migrate --dry-run, then stop eyried and run: eyriectl migrate",
    )


def secrets_checks(home: Home) -> list[Check]:
    """Provider secrets the fleet file names and the home lacks; plaintext keys in ``env:``."""
    from supervisor.fleet import load_fleet  # the fleet schema loads only where it is needed

    if not home.fleet_file.exists():
        return []
    try:
        resolved = load_fleet(home.fleet_file).resolve_all()
    except EyrieError:
        return []  # the fleet check reports it
    uses = {n: r.secrets for n, r in resolved.items() if r.secrets}
    missing = SecretFiles(home).missing(uses)
    checks = []
    if missing:
        checks.append(
            Check("secrets", False, "; ".join(missing), "eyriectl secret set <name> (the value from stdin)")
        )
    elif uses:
        checks.append(Check("secrets", True, f"every secret fleet.yaml names is in {home.secrets_dir}"))
    plain = sorted(
        f"{name}: env.{var}"
        for name, r in resolved.items()
        for var, value in r.spec.env.items()
        if value and PLAINTEXT_KEY.search(var)
    )
    if plain:
        checks.append(
            Check(
                "plaintext keys",
                False,
                f"keys written in plain text into fleet.yaml's env: {', '.join(plain)} (the fleet file is"
                " not kept as a secret)",
                "store each with `eyriectl secret set <name>` and replace env.VAR by secrets: {VAR: <name>}",
            )
        )
    return checks


def projects_check(home: Home) -> Check | None:
    """A warning for each project instances name that ``projects:`` does not list: their agents get no
    goal. None when the fleet file is missing, invalid (the fleet check says so) or names no project."""
    from supervisor.fleet import load_fleet

    if not home.fleet_file.exists():
        return None
    try:
        fleet = load_fleet(home.fleet_file)
    except EyrieError:
        return None
    if warnings := fleet.project_warnings():
        return Check(
            "projects",
            True,
            "; ".join(warnings),
            f"list each under 'projects:' in {home.fleet_file} with a name and a goal, then: eyriectl reload",
            warning=True,
        )
    if fleet.projects:
        return Check("projects", True, f"every project instances name is listed ({len(fleet.projects)})")
    return None
