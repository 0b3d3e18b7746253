"""Versioned migrations: bring instances written by older releases (or by eyrie) up to date.

Each instance records in ``instance.json`` the ``schema_version`` it was written at (eyrie's files have none:
version 0). A `Migration` has a version; `migrate_all` applies to each instance, in order, every migration
newer than its version (those for another framework count as done), then raises the recorded version to
the last one that succeeded. So each migration runs once per instance, and a second run changes nothing.
Migrations are idempotent all the same: a crash between rewriting a config file and raising the version
runs the migration again, and it must then find nothing to do.

Config files are edited with tomlkit, a round-trip parser: comments, key order and formatting the user wrote
stay as they were; only the keys a migration names change. A running instance reads the new config at its
next start.

The built-in migrations are eyrie's ZeroClaw config migrations (``internal/instance/migrate.go``):

1. ``[autonomy] allowed_commands`` gains any missing entry of the default allow-list (none is removed).
2. ``[http_request] allowed_private_hosts`` becomes ``allow_private_hosts``, the key ZeroClaw's
   ``http_request`` tool reads (its ``web_fetch`` tool really is ``allowed_private_hosts``, so only
   ``[http_request]`` is touched). The value is kept; if both keys are there the lists are merged.
   eyrie's migration also adds ``localhost`` to that list; this one does not widen what an agent may reach.
3. ``[autonomy]`` loses ``block_high_risk_commands``, ``require_approval_for_medium_risk`` and
   ``require_approval_for_actions``: older eyrie provisioners wrote them, and they override the allow-list
   (ZeroClaw classes ``curl`` as high-risk and blocks it even when allowed). ``auto_approve`` stays, as in
   eyrie: removing it would leave an unattended agent waiting for approvals.

Then this supervisor's own:

4. The instance layout of docs/layout.md: ``state/`` and ``tmp/`` are created (0700), and a framework whose
   home was the instance directory (Hermes' ``HERMES_HOME``, ZeroClaw's ``--config-dir``: a built-in
   definition whose ``config_file`` is now under ``state/``) has its config and every file it wrote there
   moved into ``state/``; ``config_path`` in ``instance.json`` follows. What the daemon owns
   (``instance.json``, ``.lock``, ``logs/``, ``secrets/``) and ``workspace/`` stay.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Array, InlineTable, Item, Table
from tomlkit.toml_document import TOMLDocument

from supervisor._fs import atomic_write, locked
from supervisor._safe_read import read_text
from supervisor.errors import EyrieError, UnsupportedFramework
from supervisor.frameworks.registry import builtin_spec
from supervisor.frameworks.render import default_allowed_commands
from supervisor.models import Instance, MigrationResult
from supervisor.paths import STATE_DIR, TMP_DIR
from supervisor.store import INSTANCE_FILE, Store

__all__ = ["MIGRATIONS", "Migration", "MigrationContext", "latest_version", "migrate_all"]

log = structlog.get_logger("supervisor.migrate")


class MigrationContext:
    """One instance as a migration sees it. Config edits stay in memory until the runner writes them."""

    def __init__(self, instance: Instance, instance_dir: Path) -> None:
        self.instance = instance
        self.instance_dir = instance_dir
        self._path: Path | None = None
        self._doc: TOMLDocument | None = None
        self._on_disk = ""
        self._steps: list[Callable[[], None]] = []
        self.new_config_path: str | None = None
        """The ``config_path`` to record once the steps are done (None: it stays)."""

    @property
    def config_path(self) -> Path:
        """The instance's ``config_path`` (relative to its directory if relative).

        When that file is gone but a file of the same name is in the instance's own directory or its
        ``state/`` (the home was moved since the path was recorded), that file. Without a recorded path: the
        framework's config file, where this release puts it or, not there, where an older one did.
        """
        if self._path is None:
            if self.instance.config_path:
                recorded = Path(self.instance.config_path).expanduser()
                path = recorded if recorded.is_absolute() else self.instance_dir / recorded
                if not path.exists():
                    local = (self.instance_dir / sub / recorded.name for sub in ("", STATE_DIR))
                    path = next((p for p in local if p.exists()), path)
            else:
                path = self.instance_dir / builtin_spec(self.instance.framework).config_file
                if not path.exists():
                    path = self.instance_dir / path.name
            self._path = path
        return self._path

    def later(self, step: Callable[[], None]) -> None:
        """A change on disk beyond the config's text (a directory made, a file moved), done by `write`."""
        self._steps.append(step)

    def moved_config(self, path: Path) -> None:
        """The config now lives at ``path`` (once the steps are done): record it."""
        self._path = path
        self.new_config_path = str(path)

    def toml(self) -> TOMLDocument:
        """The config file parsed for round-trip editing, once; migrations change it in place."""
        if self._doc is None:
            path = self.config_path
            try:
                text = read_text(path, limit=_MAX_CONFIG_BYTES, follow_symlinks=False)
            except FileNotFoundError:
                raise ValueError(f"{path}: config file not found") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"{path}: cannot be read ({exc})") from None
            try:
                self._doc = tomlkit.parse(text)
            except TOMLKitError as exc:
                raise ValueError(f"{path}: not valid TOML ({exc})") from None
            self._on_disk = text
        return self._doc

    def write(self) -> bool:
        """Write the config back if a migration changed it (same file mode); True when it wrote."""
        wrote = False
        if self._doc is not None and (text := self._doc.as_string()) != self._on_disk:
            target = self.config_path.resolve()
            atomic_write(target, text, mode=target.stat().st_mode & 0o777)
            self._on_disk = text
            wrote = True
        steps, self._steps = self._steps, []
        for step in steps:
            step()
        return wrote or bool(steps)


@dataclass(frozen=True)
class Migration:
    """One step of the on-disk format. ``apply`` returns human-readable changes ([] when nothing to do)."""

    version: int
    description: str
    applies_to_framework: str | None
    apply: Callable[[MigrationContext], list[str]]

    def applies_to(self, instance: Instance) -> bool:
        return self.applies_to_framework in (None, instance.framework)


# --- eyrie's ZeroClaw config migrations


def _table(doc: TOMLDocument, key: str) -> MutableMapping[str, Any] | None:
    """The table ``[key]``, None when absent; anything else under that key is an error."""
    value = doc.get(key)
    if value is not None and not isinstance(value, MutableMapping):
        raise ValueError(f"[{key}] is a {type(value).__name__}, expected a table")
    return value


def _ensure_table(doc: TOMLDocument, key: str) -> MutableMapping[str, Any]:
    table = _table(doc, key)
    if table is None:
        doc[key] = tomlkit.table()
        table = _table(doc, key)
        assert table is not None
    return table


def _strings(array: Array) -> list[str]:
    return [str(v) for v in array if isinstance(v, str)]


def _rename(table: MutableMapping[str, Any], old: str, new: str) -> None:
    """Rename a key where it stands, keeping its value, its comment and its place."""
    if isinstance(table, Table | InlineTable):
        item = table.item(old)
        if isinstance(item, Item):
            # tomlkit has no public rename; its container's replace keeps the position and the trivia.
            table.value._replace(old, new, item)
            return
    table[new] = table.pop(old)  # a table split across the file: the key moves to the end of its part


def _complete_allow_list(ctx: MigrationContext) -> list[str]:
    defaults = default_allowed_commands()
    autonomy = _ensure_table(ctx.toml(), "autonomy")
    current = autonomy.get("allowed_commands")
    if current is None:
        array = tomlkit.array()
        array.extend(defaults)
        autonomy["allowed_commands"] = array.multiline(True)
        return [f"autonomy.allowed_commands: set to the default allow-list ({len(defaults)} commands)"]
    if not isinstance(current, Array):
        raise ValueError(f"[autonomy] allowed_commands is a {type(current).__name__}, expected an array")
    present = set(_strings(current))
    missing = [cmd for cmd in defaults if cmd not in present]
    for cmd in missing:
        current.append(cmd)
    return [f"autonomy.allowed_commands: added {', '.join(missing)}"] if missing else []


_MAX_CONFIG_BYTES = 4 * 1024 * 1024
_LEGACY_HOSTS = "allowed_private_hosts"
_HOSTS = "allow_private_hosts"


def _rename_private_hosts(ctx: MigrationContext) -> list[str]:
    http = _table(ctx.toml(), "http_request")
    if http is None or _LEGACY_HOSTS not in http:
        return []
    if _HOSTS not in http:
        _rename(http, _LEGACY_HOSTS, _HOSTS)
        return [f"http_request: renamed {_LEGACY_HOSTS} to {_HOSTS}"]
    legacy, current = http[_LEGACY_HOSTS], http[_HOSTS]
    if not (isinstance(legacy, Array) and isinstance(current, Array)):
        raise ValueError(
            f"[http_request] has both {_LEGACY_HOSTS} ({type(legacy).__name__}) and {_HOSTS}"
            f" ({type(current).__name__}), which cannot be merged: keep one of them"
        )
    present = set(_strings(current))
    added = [host for host in _strings(legacy) if host not in present]
    for host in added:
        current.append(host)
    del http[_LEGACY_HOSTS]
    merged = f" (added {', '.join(added)})" if added else ""
    return [f"http_request: merged {_LEGACY_HOSTS} into {_HOSTS}{merged}"]


_BLOCKING_FLAGS = (
    "block_high_risk_commands",
    "require_approval_for_medium_risk",
    "require_approval_for_actions",
)


def _remove_blocking_flags(ctx: MigrationContext) -> list[str]:
    autonomy = _table(ctx.toml(), "autonomy")
    if autonomy is None:
        return []
    removed = [key for key in _BLOCKING_FLAGS if key in autonomy]
    for key in removed:
        del autonomy[key]
    if not removed:
        return []
    return [f"autonomy: removed {', '.join(removed)} (they override allowed_commands)"]


# --- the instance layout an agent may touch (docs/layout.md)

_DAEMON_OWNED = frozenset({INSTANCE_FILE, ".lock", "logs", "secrets", "workspace", STATE_DIR, TMP_DIR})
"""Entries of an instance directory that stay where they are: the daemon's, and the agent's own areas."""


def _make_private_dir(path: Path) -> Callable[[], None]:
    def make() -> None:
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)

    return make


def _move(source: Path, target: Path) -> Callable[[], None]:
    def move() -> None:
        if target.exists() or target.is_symlink():
            raise ValueError(f"cannot move {source.name} into {target.parent}: {target} exists; keep one")
        os.rename(source, target)

    return move


def _home_in_state(framework: str) -> bool:
    """Whether the framework's built-in definition keeps its config (and so its home) in ``state/``."""
    try:
        return builtin_spec(framework).config_file.startswith(f"{STATE_DIR}/")
    except UnsupportedFramework:
        return False


def _instance_layout(ctx: MigrationContext) -> list[str]:
    changes: list[str] = []
    root = ctx.instance_dir
    for sub in (STATE_DIR, TMP_DIR):
        path = root / sub
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise ValueError(f"{path} is not a directory; move it away")
        if not path.exists():
            ctx.later(_make_private_dir(path))
            changes.append(f"created {sub}/")
    if not _home_in_state(ctx.instance.framework):
        return changes
    state = root / STATE_DIR
    config = ctx.config_path
    target = state / config.name
    # in the instance directory, or moved already by an earlier run that stopped before recording it
    if config.parent in (root, state) and ctx.instance.config_path != str(target):
        ctx.moved_config(target)
    if ctx.new_config_path is not None:
        changes.append(f"config_path: now {STATE_DIR}/{config.name} (the framework's home)")
    leftovers = sorted(
        entry
        for entry in os.listdir(root)
        if entry not in _DAEMON_OWNED and not entry.startswith(f".{INSTANCE_FILE}.")
    )
    for entry in leftovers:
        ctx.later(_move(root / entry, state / entry))
    if leftovers:
        changes.append(f"moved into {STATE_DIR}/: {', '.join(leftovers)}")
    return changes


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "complete the ZeroClaw command allow-list", "zeroclaw", _complete_allow_list),
    Migration(
        2, "rename ZeroClaw's allowed_private_hosts to allow_private_hosts", "zeroclaw", _rename_private_hosts
    ),
    Migration(
        3, "remove ZeroClaw autonomy flags that override the allow-list", "zeroclaw", _remove_blocking_flags
    ),
    Migration(4, "instance layout: state/ and tmp/, a framework's home in state/", None, _instance_layout),
    Migration(5, "OpenClaw's config in state/, where it writes its backups", "openclaw", _instance_layout),
)
"""Every migration, oldest first. The last version is `supervisor.models.SCHEMA_VERSION`."""


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


# --- the runner


def migrate_all(
    store: Store, *, dry_run: bool = False, migrations: Sequence[Migration] = MIGRATIONS
) -> list[MigrationResult]:
    """Migrate every instance in ``store``; one result per instance, unreadable ones included.

    A failure is reported in that instance's ``error`` (the migrations before it stay applied) and the others
    still run. ``dry_run`` reports what would change and writes nothing. The store-wide lock is held
    throughout, so two runs (or a run and a provisioning) do not interleave.
    """
    versions = [m.version for m in migrations]
    if any(v < 1 for v in versions) or versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be positive and strictly increasing, got {versions}")
    with locked(store.lock()):
        results = [_migrate_one(store, inst, migrations, dry_run=dry_run) for inst in store.list()]
        results += [
            MigrationResult(instance_id=problem.path.parent.name, error=problem.reason)
            for problem in store.problems()
        ]
    return results


def _migrate_one(
    store: Store, inst: Instance, migrations: Sequence[Migration], *, dry_run: bool
) -> MigrationResult:
    result = MigrationResult(instance_id=inst.id, instance_name=inst.name, framework=inst.framework)
    start, latest = inst.schema_version, latest_version(migrations)
    if start > latest:
        result.error = f"schema_version {start} is newer than this release knows ({latest}); left untouched"
        return result
    ctx = MigrationContext(inst, store.dir(inst.id))
    done = start
    for migration in (m for m in migrations if m.version > start):
        try:
            changes = migration.apply(ctx) if migration.applies_to(inst) else []
            if not dry_run:
                ctx.write()
        except Exception as exc:  # one instance's failure must not stop the others
            result.error = f"migration {migration.version} ({migration.description}): {exc}"
            break
        result.applied.extend(changes)
        done = migration.version
    if not dry_run and done > start:

        def record(i: Instance) -> None:
            i.schema_version = max(i.schema_version, done)
            if ctx.new_config_path is not None:
                i.config_path = ctx.new_config_path

        try:
            store.update(inst.id, record)
        except (EyrieError, OSError) as exc:
            result.error = result.error or f"recording schema_version {done}: {exc}"
    result.skipped = not result.applied and not result.error
    if result.error:
        log.warning(
            "instance_migration_failed",
            instance=inst.name,
            instance_id=inst.id,
            framework=inst.framework,
            error=result.error,
        )
    elif result.applied and not dry_run:
        log.info(
            "instance_migrated",
            instance=inst.name,
            instance_id=inst.id,
            framework=inst.framework,
            schema_version=done,
            changes=result.applied,
        )
    return result
