"""Instance metadata on disk: ``$EYRIE_HOME/instances/<id>/instance.json``, one directory per instance.

The daemon and ``eyriectl`` are separate processes, so every write happens under a per-instance ``flock``
and lands atomically; readers never see a torn file. A corrupt file is skipped and reported, never deleted.

Everything here is input: ``instance.json`` is read without following a symlink, only from a regular file
of at most `MAX_INSTANCE_BYTES`, and a symlinked instance directory is reported, never entered. A name is
only ever found for one instance: one held by two directories, or by a directory whose ``instance.json``
cannot be read but still shows the name, is contested, and neither looked up nor given out again.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import ValidationError

from supervisor._fs import atomic_write, locked
from supervisor._safe_read import read_bytes
from supervisor.errors import CorruptInstance, NameExists, NotFound, RequiredField
from supervisor.models import Instance, InstanceStatus, utcnow
from supervisor.paths import ID_PATTERN, Home, check_id

__all__ = ["INSTANCE_FILE", "MAX_INSTANCE_BYTES", "TOKEN_FILE", "NameIndex", "Store", "StoreProblem"]

INSTANCE_FILE = "instance.json"
TOKEN_FILE = "token"
_LOCK_FILE = ".lock"
MAX_INSTANCE_BYTES = 1024 * 1024
"""The largest ``instance.json`` read (a real one is about 2 KiB)."""
_MAX_TOKEN_BYTES = 4096
_FRAMEWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_NAME_IN_JSON = re.compile(rb'"name"\s*:\s*"([a-z0-9][a-z0-9-]{0,62})"')

log = structlog.get_logger("supervisor.store")


@dataclass(eq=False)
class StoreProblem:
    """An instance directory that could not be read, and why."""

    path: Path
    reason: str
    name: str | None = None
    """The instance name the unreadable file still shows, when it shows one."""


@dataclass(frozen=True)
class NameIndex:
    """Which instance each name belongs to, as one scan of the store found them."""

    instances: dict[str, Instance]
    """Names held by exactly one readable instance."""
    contested: dict[str, str]
    """Names that must be neither looked up nor given out again, and why: held by several directories, or
    by one whose ``instance.json`` cannot be read."""
    ports: frozenset[int] = frozenset()
    """The ports readable instances hold (contested ones included)."""


class Store:
    """Reads and writes instance metadata under one root (``$EYRIE_HOME/instances``)."""

    def __init__(self, root: Path | Home) -> None:
        self.root = root.instances_dir if isinstance(root, Home) else Path(root)
        # id → (digest of instance.json, what it parsed to): a scan re-parses only the files that changed
        self._parsed: dict[str, tuple[bytes, Instance]] = {}
        # id → (stat signature of instance.json, the problem found in it then): see `problems`
        self._judged: dict[str, tuple[_Signature | None, StoreProblem | None]] = {}

    # --- paths

    def dir(self, instance_id: str) -> Path:
        """The instance's directory; raises `InvalidID` before any path is built from a bad id."""
        return self.root / check_id(instance_id)

    def _file(self, instance_id: str) -> Path:
        return self.dir(instance_id) / INSTANCE_FILE

    def lock(self) -> Path:
        """The store-wide lock file: held while a name or port is chosen and the instance first saved."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.root / _LOCK_FILE

    # --- reading

    def get(self, instance_id: str) -> Instance:
        path = self._file(instance_id)
        try:
            raw = _read(path)
        except FileNotFoundError:
            raise NotFound(f"instance {instance_id} not found") from None
        except OSError as exc:
            raise CorruptInstance(f"{path}: cannot be read ({exc.strerror or exc})") from None
        cached = self._parsed.get(instance_id)
        if cached is not None and cached[0] == _digest(raw):
            return _copy(cached[1])
        return _parse(path, raw)

    def get_by_name(self, name: str) -> Instance:
        """The one instance named ``name``; `NameExists` when the name is contested (see `NameIndex`)."""
        index = self.index()
        if name in index.contested:
            raise NameExists(index.contested[name])
        try:
            return index.instances[name]
        except KeyError:
            raise NotFound(f"instance {name!r} not found") from None

    def index(self) -> NameIndex:
        """Every name and the instance it belongs to; contested names apart, with the reason."""
        instances, problems = self._scan()
        holders: dict[str, builtins.list[str]] = {}
        for inst in instances:
            holders.setdefault(inst.name, []).append(inst.id)
        contested = {
            name: f"instance name {name!r} is held by {len(ids)} instance directories ({', '.join(ids)}); "
            "move the stray one out of the instances directory"
            for name, ids in holders.items()
            if len(ids) > 1
        }
        for p in problems:
            if p.name is not None:
                contested.setdefault(
                    p.name,
                    f"instance name {p.name!r} belongs to {p.path.parent}, which cannot be read "
                    f"({p.reason}); repair or remove it",
                )
        unique = {inst.name: inst for inst in instances if inst.name not in contested}
        return NameIndex(unique, contested, frozenset(inst.port for inst in instances if inst.port))

    def list(self) -> list[Instance]:
        """Every readable instance, oldest first; unreadable ones are logged and left out (see `problems`)."""
        instances, problems = self._scan()
        for p in problems:
            log.warning("instance_unreadable", path=str(p.path), reason=p.reason)
        return instances

    def problems(self) -> builtins.list[StoreProblem]:
        """Instance directories whose ``instance.json`` is missing, torn or invalid.

        A file is read again only when its stat signature (device, inode, size, mtime) changed since it was
        last judged: the daemon's status answer asks on every call, and every write replaces the file."""
        judged: dict[str, tuple[_Signature | None, StoreProblem | None]] = {}
        parsed: dict[str, tuple[bytes, Instance]] = {}
        for entry in self._entries():
            try:
                signature = _signature(entry)
            except OSError:
                signature = None
            cached = self._judged.get(entry.name)
            if signature is None or cached is None or cached[0] != signature:
                loaded = self._load(entry, parsed)
                cached = (signature, loaded if isinstance(loaded, StoreProblem) else None)
            judged[entry.name] = cached
        self._judged = judged
        self._parsed.update(parsed)  # the daemon's first look: its first scan then parses nothing again
        return [problem for _, problem in judged.values() if problem is not None]

    def _entries(self) -> builtins.list[os.DirEntry[str]]:
        try:
            found = (e for e in os.scandir(self.root) if not e.name.startswith(".") and e.is_dir())
            return sorted(found, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _scan(self) -> tuple[builtins.list[Instance], builtins.list[StoreProblem]]:
        instances: builtins.list[Instance] = []
        problems: builtins.list[StoreProblem] = []
        parsed: dict[str, tuple[bytes, Instance]] = {}
        for entry in self._entries():
            loaded = self._load(entry, parsed)
            if isinstance(loaded, StoreProblem):
                problems.append(loaded)
            else:
                instances.append(loaded)
        self._parsed = parsed
        instances.sort(key=lambda i: (i.created_at is None, i.created_at or utcnow(), i.name, i.id))
        return instances, problems

    def _load(
        self, entry: os.DirEntry[str], parsed: dict[str, tuple[bytes, Instance]]
    ) -> Instance | StoreProblem:
        """The instance in ``entry`` (a copy; its parse is kept in ``parsed``), or why it cannot be read."""
        path = Path(entry.path) / INSTANCE_FILE
        raw = b""
        try:
            raw = _read(path)
            cached = self._parsed.get(entry.name)
            digest = _digest(raw)
            if cached is None or cached[0] != digest:
                cached = (digest, _parse(path, raw))
            parsed[entry.name] = cached
            return _copy(cached[1])
        except FileNotFoundError:
            return StoreProblem(path, "instance.json is missing")
        except CorruptInstance as exc:
            return StoreProblem(path, str(exc), _salvaged_name(raw))
        except OSError as exc:
            return StoreProblem(path, f"{path}: cannot be read ({exc.strerror or exc})")

    def check_name_free(self, name: str) -> None:
        """Raise `NameExists` (saying why) unless ``name`` may be given to a new instance."""
        index = self.index()
        if name in index.contested:
            raise NameExists(index.contested[name])
        if name in index.instances:
            raise NameExists(f"instance name {name!r} already exists")

    def name_exists(self, name: str) -> bool:
        """Whether ``name`` is taken: by a readable instance, or contested (see `NameIndex`)."""
        index = self.index()
        return name in index.instances or name in index.contested

    def token(self, instance_id: str) -> str:
        """The instance's auth token from ``secrets/token`` ("" when it has none)."""
        path = f"{self.dir(instance_id)}/secrets/{TOKEN_FILE}"  # joined as text: read once a start
        try:
            return read_bytes(path, limit=_MAX_TOKEN_BYTES, follow_symlinks=False).decode().strip()
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptInstance(f"{path}: cannot be read as a token ({exc})") from None

    # --- writing

    def save(self, inst: Instance, *, durable: bool = True) -> None:
        """Write the whole instance (creating its directory); the caller owns every field. ``durable=False``:
        the caller syncs the directory later (an instance built in staging)."""
        _require(inst)
        directory = self.dir(inst.id)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with locked(directory / _LOCK_FILE):
            _write(directory / INSTANCE_FILE, inst, durable=durable)

    def create(self, inst: Instance) -> None:
        """Save a new instance, refusing a taken name (`NameExists`); callers hold `lock` around it."""
        _require(inst)
        self.check_name_free(inst.name)
        self.save(inst)

    def update(
        self,
        instance_id: str,
        mutate: Callable[[Instance], object],
        *,
        durable: bool = True,
        wait: bool = True,
        keep: bool = False,
    ) -> Instance:
        """Read, change and write one instance under its lock, so concurrent writers lose nothing.

        ``durable=False`` skips the fsyncs (the write stays atomic), and the write itself when the file holds
        those very bytes already (an adoption that changes nothing): for runtime state that a reboot makes
        stale anyway, which the engine writes on every transition. ``wait=False`` raises `BlockingIOError`
        instead of waiting when another writer holds the instance's lock. ``keep=True``: the caller never
        changes the instance returned, so the store keeps that very one as its parse of the file written
        (one record in memory for both, rather than a second parse at the next scan).
        """
        directory = self.dir(instance_id)
        file = directory / INSTANCE_FILE
        if not file.exists():
            raise NotFound(f"instance {instance_id} not found")
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(locked(directory / _LOCK_FILE, wait=wait))
                raw = _read(file)
            except FileNotFoundError:  # deleted between the check and the lock
                raise NotFound(f"instance {instance_id} not found") from None
            except OSError as exc:
                if isinstance(exc, BlockingIOError):
                    raise
                raise CorruptInstance(f"{file}: cannot be read ({exc.strerror or exc})") from None
            inst = self._as_written(instance_id, raw) or _parse(file, raw)
            mutate(inst)
            written = _dump(inst)
            if durable or written != raw:  # runtime state already on disk byte for byte is not rewritten
                atomic_write(file, written, mode=0o600, durable=durable)
        if keep:
            self._parsed[instance_id] = (_digest(written), inst)
        return inst

    def _as_written(self, instance_id: str, raw: bytes) -> Instance | None:
        """A copy of the instance kept for ``raw`` when ``raw`` is exactly what the store last read or wrote
        for it: a file that changed in any byte since (a hand edit, another tool) is parsed and checked
        again. Parsing and the containment check were two thirds of the CPU of an engine write."""
        cached = self._parsed.get(instance_id)
        if cached is None or cached[0] != _digest(raw):
            return None
        return _copy(cached[1])

    def update_status(self, instance_id: str, status: InstanceStatus | str) -> Instance:
        new = InstanceStatus(status)

        def apply(inst: Instance) -> None:
            inst.status = new
            inst.status_updated_at = utcnow()

        return self.update(instance_id, apply)

    def delete(self, instance_id: str) -> None:
        """Remove the instance directory and everything in it (a purge; a removal moves it to the trash).

        A directory that is a symlink is removed as the link: nothing it points at, maybe outside the
        home, is touched."""
        directory = self.dir(instance_id)
        if directory.is_symlink():  # a plant: remove the link, never what it points at
            directory.unlink()
            return
        if not directory.is_dir():
            raise NotFound(f"instance {instance_id} not found")
        with locked(directory / _LOCK_FILE):
            shutil.rmtree(directory)


def _read(path: Path) -> bytes:
    """``instance.json``, neither through a symlink nor from a symlinked instance directory."""
    if path.parent.is_symlink():
        raise OSError(errno.ELOOP, "the instance directory is a symlink; it must be a real directory")
    return read_bytes(path, limit=MAX_INSTANCE_BYTES, follow_symlinks=False)


_Signature = tuple[bool, int, int, int, int]
"""Whether the instance directory is a symlink; device, inode, size and mtime of its ``instance.json``."""


def _signature(entry: os.DirEntry[str]) -> _Signature:
    st = os.lstat(Path(entry.path) / INSTANCE_FILE)
    return (entry.is_symlink(), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _salvaged_name(raw: bytes) -> str | None:
    """The instance name an unreadable (say, truncated) ``instance.json`` still shows, if it shows one."""
    match = _NAME_IN_JSON.search(raw)
    return match.group(1).decode() if match else None


def _check_contained(path: Path, inst: Instance) -> None:
    """Refuse an instance whose id, framework or file paths would lead out of its own directory.

    The framework names its log file and the paths are written to and read from, so a hand-edited
    ``instance.json`` must not be able to point any of them at a file elsewhere.
    """
    directory = path.parent
    if inst.id != directory.name:
        raise CorruptInstance(f"{path}: id {inst.id!r} does not match its directory {directory.name!r}")
    if not _FRAMEWORK_NAME.fullmatch(inst.framework):
        raise CorruptInstance(f"{path}: framework {inst.framework!r} is not a framework name")
    root: Path | None = None
    for field in ("config_path", "workspace_path"):
        value: str | None = getattr(inst, field)
        if not value or _plainly_inside(str(directory), value):
            continue
        root = root or directory.resolve()
        recorded = Path(value).expanduser()
        target = (directory / recorded).resolve()
        if not target.is_relative_to(root) and (moved := _in_moved_home(recorded)) is not None:
            target = (directory / moved).resolve()
            setattr(inst, field, str(directory / moved))
        if not target.is_relative_to(root) or target == root:
            raise CorruptInstance(f"{path}: {field} {value!r} is outside the instance directory {directory}")


def _plainly_inside(directory: str, value: str) -> bool:
    """Whether ``value`` names an entry below ``directory`` by a path with no ``..``, no ``.`` and no
    symlink in it below ``directory``: then it stays inside, whatever ``directory`` itself resolves to, and
    one ``lstat`` per component below ``directory`` shows it rather than a resolution of the whole path
    (which was two thirds of the CPU of reading an instance). False: not known, resolve it."""
    joined = os.path.join(directory, os.path.expanduser(value))
    if not joined.startswith(directory + os.sep):
        return False
    parts = joined[len(directory) + 1 :].split(os.sep)
    if any(part in ("", ".", "..") for part in parts):
        return False
    below = directory
    for part in parts:
        below = os.path.join(below, part)
        try:
            if stat.S_ISLNK(os.lstat(below).st_mode):
                return False
        except FileNotFoundError:
            return True  # nothing there yet: a resolution keeps the rest of the path as it is written
        except OSError:
            return False
    return True


def _in_moved_home(recorded: Path) -> Path | None:
    """The part of ``recorded`` inside its instance directory, when it names a file in the instances
    directory of another home (``…/instances/<id>/config.toml`` written before the home was moved)."""
    parts = recorded.parts
    for i in range(len(parts) - 3, -1, -1):
        if parts[i] == "instances" and ID_PATTERN.fullmatch(parts[i + 1]) and ".." not in parts[i + 2 :]:
            return Path(*parts[i + 2 :])
    return None


def _write(file: Path, inst: Instance, *, durable: bool = True) -> bytes:
    data = _dump(inst)
    atomic_write(file, data, mode=0o600, durable=durable)
    return data


def _digest(raw: bytes) -> bytes:
    """What the cache keeps of a file to tell whether it changed: 16 bytes rather than the whole file."""
    return hashlib.blake2b(raw, digest_size=16).digest()


def _dump(inst: Instance) -> bytes:
    """``Instance.to_json_dict`` as indented JSON. pydantic's serialiser writes the same text several times
    faster than ``json.dumps`` (non-ASCII stays UTF-8 instead of ``\\u`` escapes); a kept unknown key that
    is ``null``, which it would leave out, takes the slow path."""
    if any(value is None for value in (inst.model_extra or {}).values()):
        return (json.dumps(inst.to_json_dict(), indent=2) + "\n").encode()
    return inst.model_dump_json(indent=2, exclude_none=True).encode() + b"\n"


def _copy(inst: Instance) -> Instance:
    """A copy the caller may change without touching the cached one (nested values copied too)."""
    last_exit = inst.last_exit.model_copy() if inst.last_exit is not None else None
    cmdline = list(inst.cmdline) if inst.cmdline is not None else None
    return inst.model_copy(update={"last_exit": last_exit, "cmdline": cmdline})


def _require(inst: Instance) -> None:
    for field in ("id", "name", "framework"):
        if not getattr(inst, field):
            raise RequiredField(f"instance {field} is required")
    check_id(inst.id)


def _parse(path: Path, raw: bytes) -> Instance:
    try:
        inst = Instance.model_validate_json(raw)  # the common case, parsed and validated in one pass
    except ValidationError:
        return _parse_slowly(path, raw)  # for the error message json and the dict validation give
    _check_contained(path, inst)
    return inst


def _parse_slowly(path: Path, raw: bytes) -> Instance:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptInstance(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptInstance(f"{path}: expected a JSON object")
    try:
        inst = Instance.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CorruptInstance(f"{path}: {where}: {first['msg']}") from None
    _check_contained(path, inst)
    return inst
