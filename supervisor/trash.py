"""The trash: where a removed instance's directory goes, so that no removal destroys data by surprise.

A removed instance's directory is renamed, whole, to ``$EYRIE_HOME/removed/<name>-<id>-<UTC time>/``; beside
it ``<that>.json`` records who it was, when it was removed and its fleet-file declaration, so that it can
be put back as it was. Only emptying the trash (by hand, or by the daemon past the retention) or a purge
deletes.

Nothing here follows a symlink: an instance directory that is a symlink moves (and is deleted) as the link
itself, never what it points at, which may lie outside the home. Every operation holds the store-wide lock,
the one provisioning holds, so a name or an id is never taken twice while an entry moves.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from supervisor._fs import atomic_write, fsync_dir, locked
from supervisor.errors import Conflict, NotFound
from supervisor.models import check_name, utcnow
from supervisor.paths import Home, check_id
from supervisor.store import Store

__all__ = ["TRASH_DIR", "Trash", "TrashEntry", "delete_tree"]

TRASH_DIR = "removed"
_META_SUFFIX = ".json"
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_DIR_MODE = 0o700
_MAX_META_BYTES = 1024 * 1024
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ENTRY_NAME = re.compile(
    rf"^(?P<name>[a-z0-9][a-z0-9-]*?)-(?P<id>{_UUID})(?:-(?P<at>\d{{8}}T\d{{6}}Z)(?:-\d+)?)?$"
)
"""How the directory name reads when its ``.json`` is missing: this layout, or ``<name>-<id>`` of releases
that kept files only on request."""

log = structlog.get_logger("supervisor.trash")


@dataclass(frozen=True)
class TrashEntry:
    """One removed instance in the trash."""

    path: Path
    name: str
    instance_id: str
    removed_at: datetime
    declaration: dict[str, Any] | None = field(default=None, compare=False)
    """The fleet-file entry it was declared with (its non-default keys); None when it was not declared."""

    @property
    def entry(self) -> str:
        """The entry's directory name, which is how ``eyriectl trash`` names it."""
        return self.path.name

    def size_bytes(self) -> int:
        """Bytes the entry's files take, symlinks counted as links."""
        if self.path.is_symlink() or not self.path.is_dir():
            return 0
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "path": str(self.path),
            "name": self.name,
            "id": self.instance_id,
            "removed_at": self.removed_at.isoformat().replace("+00:00", "Z"),
            "declared": self.declaration is not None,
            "declaration": self.declaration,
            "bytes": self.size_bytes(),
        }


def delete_tree(path: Path) -> None:
    """Delete ``path`` and what is below it; a symlink is removed as a link, never followed."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)  # fd-based: never follows a symlink found inside
    else:
        path.unlink()


class Trash:
    """The ``removed/`` directory of one home."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.root = home.root / TRASH_DIR
        self._store = Store(home)

    # --- putting in

    def move_in(
        self,
        instance_id: str,
        *,
        name: str,
        declaration: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> TrashEntry:
        """Move ``instances/<id>/`` into the trash as it is (a symlink stays a link); `NotFound` if absent."""
        source = self._store.dir(instance_id)
        check_name(name)
        when = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
        with locked(self._store.lock()):
            if not os.path.lexists(source):
                raise NotFound(f"instance {instance_id} not found")
            self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            dest = self._free_path(f"{name}-{instance_id}-{when.strftime(_TIME_FORMAT)}")
            entry = TrashEntry(dest, name, instance_id, when, declaration)
            _write_meta(entry)
            os.rename(source, dest)
            fsync_dir(self.root)
            fsync_dir(self._store.root)
        log.info("instance_moved_to_trash", instance=name, instance_id=instance_id, path=str(dest))
        return entry

    def _free_path(self, base: str) -> Path:
        candidate, n = self.root / base, 1
        while os.path.lexists(candidate) or os.path.lexists(_meta_path(candidate)):
            n += 1
            candidate = self.root / f"{base}-{n}"
        return candidate

    # --- looking

    def entries(self) -> list[TrashEntry]:
        """Every entry, oldest removal first."""
        try:
            listed = sorted(os.scandir(self.root), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = [
            entry
            for dirent in listed
            if not dirent.name.endswith(_META_SUFFIX) and not dirent.name.startswith(".")
            if (entry := _read_entry(Path(dirent.path))) is not None
        ]
        return sorted(found, key=lambda e: (e.removed_at, e.entry))

    def find(self, name: str, *, instance_id: str | None = None) -> TrashEntry:
        """The newest entry of ``name`` (or the one of ``instance_id``); `NotFound` when there is none."""
        matches = [e for e in self.entries() if e.name == name]
        if instance_id is not None:
            matches = [e for e in matches if e.instance_id == instance_id]
        if not matches:
            which = f"{name!r}" + (f" with id {instance_id}" if instance_id else "")
            raise NotFound(f"no instance {which} in the trash ({self.root})")
        return matches[-1]

    # --- taking out

    def restore(self, entry: TrashEntry) -> Path:
        """Move ``entry`` back to ``instances/<id>/``; `Conflict` when its name or id is in use again."""
        target = self._store.dir(entry.instance_id)
        with locked(self._store.lock()):
            if not os.path.lexists(entry.path):
                raise NotFound(f"{entry.path} is no longer in the trash")
            if os.path.lexists(target):
                raise Conflict(f"instance id {entry.instance_id} is in use again ({target})")
            if self._store.name_exists(entry.name):
                raise Conflict(f"an instance named {entry.name!r} exists; remove or rename it first")
            os.rename(entry.path, target)
            _meta_path(entry.path).unlink(missing_ok=True)
            fsync_dir(self._store.root)
            fsync_dir(self.root)
        log.info("instance_restored_from_trash", instance=entry.name, instance_id=entry.instance_id)
        return target

    def put_back(self, entry: TrashEntry) -> None:
        """Undo `restore` (its declaration could not be written back): the directory returns to the trash."""
        with locked(self._store.lock()):
            os.rename(self._store.dir(entry.instance_id), entry.path)
            _write_meta(entry)
            fsync_dir(self.root)

    def empty(self, *, older_than: timedelta | None = None, now: datetime | None = None) -> list[TrashEntry]:
        """Delete every entry (``older_than``: only those removed longer ago than that); returns them."""
        cutoff = None if older_than is None else (now or utcnow()) - older_than
        deleted: list[TrashEntry] = []
        with locked(self._store.lock()):
            for entry in self.entries():
                if cutoff is not None and entry.removed_at > cutoff:
                    continue
                delete_tree(entry.path)
                _meta_path(entry.path).unlink(missing_ok=True)
                deleted.append(entry)
            self._drop_stray_meta()
        for entry in deleted:
            path = str(entry.path)
            log.info("trash_entry_deleted", instance=entry.name, instance_id=entry.instance_id, path=path)
        return deleted

    def _drop_stray_meta(self) -> None:
        """A ``.json`` whose directory never arrived (a crash between the two steps of `move_in`)."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for dirent in os.scandir(self.root):
                if dirent.name.endswith(_META_SUFFIX):
                    directory = Path(dirent.path[: -len(_META_SUFFIX)])
                    if not os.path.lexists(directory):
                        Path(dirent.path).unlink(missing_ok=True)


def _meta_path(entry_dir: Path) -> Path:
    return entry_dir.with_name(entry_dir.name + _META_SUFFIX)


def _write_meta(entry: TrashEntry) -> None:
    data = {
        "name": entry.name,
        "id": entry.instance_id,
        "removed_at": entry.removed_at.isoformat(),
        "declaration": entry.declaration,
    }
    atomic_write(_meta_path(entry.path), json.dumps(data, indent=2) + "\n", mode=0o600)


def _read_entry(path: Path) -> TrashEntry | None:
    """The entry at ``path`` from its ``.json``, else from its directory name; None if it is neither."""
    meta = _read_meta(_meta_path(path))
    if meta is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            declaration = meta.get("declaration")
            return TrashEntry(
                path,
                check_name(str(meta["name"])),
                check_id(str(meta["id"])),
                datetime.fromisoformat(str(meta["removed_at"])).astimezone(UTC),
                declaration if isinstance(declaration, dict) else None,
            )
    match = _ENTRY_NAME.fullmatch(path.name)
    if match is None:
        return None
    if match["at"]:
        removed_at = datetime.strptime(match["at"], _TIME_FORMAT).replace(tzinfo=UTC)
    else:
        removed_at = datetime.fromtimestamp(os.lstat(path).st_mtime, UTC)
    return TrashEntry(path, match["name"], match["id"], removed_at, None)


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The entry's record, read without following a symlink or blocking on a FIFO; None when unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, _MAX_META_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(raw) > _MAX_META_BYTES:
        return None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(raw)
        return data if isinstance(data, dict) else None
    return None
